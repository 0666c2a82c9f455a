// Free loopback TCP ports for components a test starts.
import fs from 'node:fs';
import net from 'node:net';

// Ports handed out by this process, never handed out twice (the OS may reuse a closed one).
const given = new Set<number>();

function probe(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * Ports below the kernel's ephemeral range: an outgoing connection of any process (Envoy to
 * Isthmus, a client to a backend) takes its source port from that range, and could take a
 * port between the probe and the bind of the component it was meant for.
 */
const RANGE = ((): [number, number] => {
  let low = 32768;
  try {
    low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: the common default
  }
  return [Math.max(1024, low - 11000), low - 1];
})();

/** One free TCP port on `host` (default 127.0.0.1), not given before by this process. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [lo, hi] = RANGE;
  for (let i = 0; i < 200; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (given.has(port) || !(await bindable(host, port))) continue;
    given.add(port);
    return port;
  }
  for (let i = 0; i < 50; i++) {
    const port = await probe(host);
    if (port > 0 && !given.has(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error(`no free port found on ${host}`);
}

/** `n` distinct free TCP ports on `host`. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort(host));
  return out;
}

/** True when something accepts TCP connections on host:port. */
export function isListening(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (v: boolean): void => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}
