// "HOST:PORT" and "[v6]:PORT" for the DNS listener and upstream.

/** Splits an address; throws naming it when it is not HOST:PORT. */
export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`"${address}" is not HOST:PORT`);
  return { host: m[1] ?? m[2]!, port };
}
