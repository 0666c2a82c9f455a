// DNS wire format (RFC 1035, EDNS0 of RFC 6891): a bounded decoder and a compressing encoder.
//
// The decoder never trusts the packet: every read is bounds-checked, a name is at most 255
// octets, compression pointers must point backwards and are followed at most 64 times, and
// section counts cannot make it loop past the end of the buffer. Anything else is a
// WireError. Names are text with '.' between labels; a '.' or '\' inside a label is escaped
// with '\' and other bytes outside printable ASCII as \DDD, so text maps to one label list.
export * from './wire-base.ts';
export * from './wire-decode.ts';
export * from './wire-encode.ts';
