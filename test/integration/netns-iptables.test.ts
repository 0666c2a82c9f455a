// deploy/iptables/isthmus-iptables.sh in network namespaces: what it redirects and what it
// leaves alone, each option by behaviour (which listener answers a connection), idempotence,
// and --clean restoring the nat table it found.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetLab, PROXY_UID, type Host } from '../helpers/netns.ts';
import { assertNoLeftovers, dumpLogsOnFailure, stopAll } from '../helpers/processes.ts';
import { GiveUp, waitFor } from '../helpers/wait.ts';

let lab: NetLab | undefined;
let a: Host;
let b: Host;
let pristine: string;

/** Listeners that answer with their tag: which one answers tells where a connection went. */
const TAGGER = `const net = require('node:net');
for (const [port, tag] of JSON.parse(process.argv[1])) net.createServer((s) => s.end(tag + '\\n')).listen(port, '0.0.0.0');
console.log('ready');`;

async function taggers(host: Host, ports: [number, string][]): Promise<void> {
  const p = lab!.spawn(host, 'tagger', process.execPath, ['-e', TAGGER, JSON.stringify(ports)]);
  await waitFor(() => {
    if (p.exit) throw new GiveUp(p.tail());
    return p.output().includes('ready');
  }, { timeoutMs: 10_000, what: `listeners on ${host.name}` });
}

/** The first line a connection from `from` to ip:port gets, or "refused"; `uid` to connect as another user. */
async function connect(from: Host, ip: string, port: number, uid?: number): Promise<string> {
  const script = `exec 3<>/dev/tcp/${ip}/${port} || exit 7; head -n1 <&3`;
  const cmd = uid === undefined ? ['bash', '-c', script] : ['setpriv', '--reuid', String(uid), '--regid', String(uid), '--clear-groups', 'bash', '-c', script];
  const out = await lab!.inNs(from.ns, 'timeout', ['3', ...cmd], true);
  return out.trim() || 'refused';
}

before(async () => {
  lab = await NetLab.create();
  a = await lab.addHost('a');
  b = await lab.addHost('b');
  pristine = await lab.natRules(a);
  await taggers(a, [[15001, 'a-outbound'], [15006, 'a-inbound']]);
  await taggers(b, [[7070, 'b-7070'], [7071, 'b-7071']]);
});

afterEach(dumpLogsOnFailure);
after(async () => {
  await stopAll();
  await lab?.destroy();
  const left = lab ? await lab.leftovers() : [];
  assertNoLeftovers();
  assert.deepEqual(left, []);
});

test('outbound TCP goes to 15001, except the proxy uid, excluded ports and excluded CIDRs', async () => {
  await lab!.iptables(a, ['-u', String(PROXY_UID), '-o', '7071', '-i', '']);
  assert.equal(await connect(a, b.ip, 7070), 'a-outbound');
  assert.equal(await connect(a, b.ip, 7071), 'b-7071', '-o 7071 is not redirected');
  assert.equal(await connect(a, b.ip, 7070, PROXY_UID), 'b-7070', 'the proxy uid is not redirected');
  assert.equal(await connect(a, '127.0.0.1', 15006), 'a-inbound', 'loopback is not redirected');
  await lab!.iptables(a, ['-u', String(PROXY_UID), '-x', `${b.ip}/32`, '-i', '']);
  assert.equal(await connect(a, b.ip, 7070), 'b-7070', '-x CIDR is not redirected');
});

test('inbound TCP goes to 15006: listed ports, or every port but the excluded and the sidecar ones', async () => {
  await lab!.iptables(a, ['-u', String(PROXY_UID), '-i', '7070']);
  assert.equal(await connect(b, a.ip, 7070), 'a-inbound');
  assert.equal(await connect(b, a.ip, 7072), 'refused', 'a port not listed is not redirected');
  await lab!.iptables(a, ['-u', String(PROXY_UID), '-i', '*', '-d', '7070']);
  assert.equal(await connect(b, a.ip, 7070), 'refused', '-d 7070 is not redirected');
  assert.equal(await connect(b, a.ip, 7072), 'a-inbound');
  assert.equal(await connect(b, a.ip, 15000), 'refused', 'the admin port is never redirected');
});

test('running twice gives the same rules; --clean restores the nat table', async () => {
  const args = ['-u', String(PROXY_UID), '-x', '10.0.0.0/8,192.168.0.0/16', '-o', '22,3306', '-i', '*', '-d', '22'];
  await lab!.iptables(a, args);
  const once = await lab!.natRules(a);
  await lab!.iptables(a, args);
  assert.equal(await lab!.natRules(a), once);
  assert.match(once, /-A OUTPUT -p tcp -j ISTHMUS_OUTPUT/);
  assert.equal((once.match(/-j ISTHMUS_OUTPUT/g) ?? []).length, 1);
  await lab!.iptables(a, ['--clean']);
  assert.equal(await lab!.natRules(a), pristine);
  await lab!.iptables(a, ['--clean']);
  assert.equal(await connect(a, b.ip, 7070), 'b-7070');
  await assert.rejects(lab!.iptables(a, ['-p', 'x']), /bad port/);
});
