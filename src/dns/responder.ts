// One query in, one answer out: the authoritative logic of the built-in responder, apart
// from sockets so it can be driven (and fuzzed) directly.
//
// - A packet shorter than a header, or one that is itself a response, is dropped.
// - Malformed: FORMERR. An opcode other than QUERY: NOTIMP. EDNS version above 0: BADVERS.
// - Outside the zone: REFUSED, or handed back to the caller to forward when it has an upstream.
// - Inside: AA set; a name with records but none of the type is NODATA; a name with nothing at
//   or below it is NXDOMAIN; an empty non-terminal is NODATA. Negative answers carry the SOA
//   in the authority section, with the negative TTL as its TTL. Zone transfers are REFUSED.
// - The answer keeps the question's case (owner names are compressed into the question).
// - Over UDP the answer fits the client's EDNS payload size (512 without EDNS), capped by
//   ours, which the OPT record of the answer advertises. What does not fit: first the
//   additional section goes, then everything but the question and TC is set.
import type { Zone } from './zone.ts';
import { CLASS_ANY, CLASS_IN, decodeMessage, encodeMessage, type Header, type Message, MessageTooLarge, OPCODE_QUERY, peekHeader, RCODE, type WireRecord, WireError } from './wire.ts';
import { type DnsRecord, TYPE } from './rr.ts';

export const DEFAULT_UDP_PAYLOAD = 1232;
const MIN_UDP = 512;

export type Transport = 'udp' | 'tcp';

export interface ResponderOptions {
  /** Largest UDP answer we send, and the size we advertise (default 1232, the DNS Flag Day 2020 value). */
  readonly udpPayloadSize?: number;
  /** True when queries outside the zone go to an upstream instead of REFUSED. */
  readonly forwarding?: boolean;
}

export type Outcome =
  | { readonly kind: 'reply'; readonly bytes: Buffer; readonly rcode: number; readonly qtype?: number; readonly truncated: boolean }
  | { readonly kind: 'forward'; readonly query: Message; readonly qtype: number }
  | { readonly kind: 'drop'; readonly reason: string };

/** The answer to one packet. `zone` undefined means no model yet: in-zone queries get SERVFAIL. */
export function respond(packet: Buffer, transport: Transport, zone: Zone | undefined, origin: string, opts: ResponderOptions = {}): Outcome {
  const ours = Math.max(MIN_UDP, Math.min(65535, opts.udpPayloadSize ?? DEFAULT_UDP_PAYLOAD));
  const header = peekHeader(packet);
  if (!header) return { kind: 'drop', reason: 'shorter than a DNS header' };
  if (header.qr) return { kind: 'drop', reason: 'a response, not a query' };
  let msg: Message;
  try {
    msg = decodeMessage(packet);
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    // Another opcode may carry another layout: NOTIMP, whether or not it parses.
    return reply(header, header.opcode !== OPCODE_QUERY ? RCODE.NOTIMP : RCODE.FORMERR, {}, transport, ours, undefined);
  }
  const q = msg.questions[0];
  if (msg.header.opcode !== OPCODE_QUERY) return reply(header, RCODE.NOTIMP, { ...(q ? { question: q } : {}) }, transport, ours, msg);
  if (msg.edns && msg.edns.version > 0) return reply(header, RCODE.BADVERS, {}, transport, ours, msg);
  if (msg.questions.length !== 1 || !q || q.type === TYPE.OPT) return reply(header, RCODE.FORMERR, {}, transport, ours, msg);
  const name = q.name.toLowerCase();
  if (!inZone(name, origin)) {
    if (opts.forwarding) return { kind: 'forward', query: msg, qtype: q.type };
    return reply(header, RCODE.REFUSED, { question: q }, transport, ours, msg);
  }
  if ((q.class !== CLASS_IN && q.class !== CLASS_ANY) || q.type === TYPE.AXFR || q.type === TYPE.IXFR) {
    return reply(header, RCODE.REFUSED, { question: q }, transport, ours, msg);
  }
  if (!zone) return reply(header, RCODE.SERVFAIL, { question: q }, transport, ours, msg);
  const found = zone.lookup(name, q.type);
  if (found.kind === 'answer') {
    return reply(header, RCODE.NOERROR, { question: q, aa: true, answers: found.records, additional: zone.additional(found.records) }, transport, ours, msg);
  }
  const soa: DnsRecord = { ...zone.soa, ttl: Math.min(zone.soa.ttl, zone.soa.minimum) };
  return reply(header, found.kind === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.NOERROR, { question: q, aa: true, authority: [soa] }, transport, ours, msg);
}

function inZone(name: string, origin: string): boolean {
  return name === origin || name.endsWith(`.${origin}`);
}

interface Body {
  readonly question?: Message['questions'][number];
  readonly aa?: boolean;
  readonly answers?: readonly WireRecord[];
  readonly authority?: readonly WireRecord[];
  readonly additional?: readonly WireRecord[];
}

function reply(header: Header, rcode: number, body: Body, transport: Transport, ours: number, query: Message | undefined): Outcome {
  const edns = query?.edns;
  const limit = transport === 'tcp' ? 65535 : edns ? Math.max(MIN_UDP, Math.min(edns.payloadSize, ours)) : MIN_UDP;
  const q = body.question;
  const base = {
    header: { id: header.id, qr: true, opcode: header.opcode, aa: body.aa ?? false, rd: header.rd, cd: header.cd, rcode },
    questions: q ? [q] : [],
    ...(edns || rcode > 0xf ? { edns: { payloadSize: ours } } : {}),
  };
  const attempt = (answers: readonly WireRecord[], authority: readonly WireRecord[], additional: readonly WireRecord[], tc: boolean): Buffer | undefined => {
    try {
      return encodeMessage({ ...base, header: { ...base.header, tc }, answers, authority, additional }, limit);
    } catch (e) {
      if (e instanceof MessageTooLarge) return undefined;
      throw e;
    }
  };
  const answers = body.answers ?? [];
  const authority = body.authority ?? [];
  const additional = body.additional ?? [];
  let bytes = attempt(answers, authority, additional, false);
  if (!bytes && additional.length) bytes = attempt(answers, authority, [], false);
  let truncated = false;
  if (!bytes) {
    truncated = true;
    bytes = attempt([], [], [], true) ?? encodeMessage({ ...base, questions: [], header: { ...base.header, tc: true } });
  }
  return { kind: 'reply', bytes, rcode, ...(q ? { qtype: q.type } : {}), truncated };
}

/** SERVFAIL for a query (e.g. when forwarding failed). */
export function servfail(query: Message, transport: Transport, opts: ResponderOptions = {}): Buffer {
  const ours = Math.max(MIN_UDP, Math.min(65535, opts.udpPayloadSize ?? DEFAULT_UDP_PAYLOAD));
  const out = reply(query.header, RCODE.SERVFAIL, { ...(query.questions[0] ? { question: query.questions[0] } : {}) }, transport, ours, query);
  return (out as { bytes: Buffer }).bytes;
}
