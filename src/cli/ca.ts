// isthmus ca init: a CA root in Istio's cacerts layout, made once and shared by every
// replica (e.g. kubectl create secret generic cacerts --from-file=DIR).
import { CA_FILES, loadOrCreate } from '../ca/index.ts';
import { DEFAULT_TRUST_DOMAIN, trustDomainProblem } from '../model/identity.ts';
import { parse, UsageError } from './args.ts';

export const CA_HELP = `Usage: isthmus ca init --dir DIR [--trust-domain NAME]

Writes a new self-signed CA root (ECDSA P-256, 10 years, subject O=<trust domain>) into DIR
in Istio's cacerts layout: ${Object.values(CA_FILES).join(', ')} (the key mode 0600).
Replicas of 'isthmus serve --ca-dir' that share these files sign under one root, e.g.
  isthmus ca init --dir cacerts && kubectl -n isthmus-system create secret generic cacerts --from-file=cacerts
Refuses a DIR that already holds a CA (ca-cert.pem or ca-key.pem). To use an operator's
intermediate instead, put its four files in the cacerts layout in DIR yourself.

Options:
  --dir DIR            where to write the files (created, mode 0700)
  --trust-domain NAME  the root's subject (default ${DEFAULT_TRUST_DOMAIN})
  -h, --help           this text
`;

export async function ca(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(CA_HELP);
    return 0;
  }
  if (sub !== 'init') throw new UsageError(`unknown ca command "${sub}" (expected init)`);
  const { values } = parse(rest, { dir: { type: 'string' }, 'trust-domain': { type: 'string' } });
  if (values.help) {
    process.stdout.write(CA_HELP);
    return 0;
  }
  if (!values.dir) throw new UsageError('ca init needs --dir');
  const td = values['trust-domain'] ?? DEFAULT_TRUST_DOMAIN;
  const problem = trustDomainProblem(td);
  if (problem) throw new UsageError(`--trust-domain: ${problem}`);
  const { existsSync } = await import('node:fs');
  const path = await import('node:path');
  if (existsSync(path.join(values.dir, CA_FILES.cert)) || existsSync(path.join(values.dir, CA_FILES.key))) throw new UsageError(`--dir "${values.dir}" already holds a CA (${CA_FILES.cert} or ${CA_FILES.key}); not overwritten`);
  const { material } = await loadOrCreate(values.dir, td);
  process.stdout.write(`wrote a CA root (${material.cert.subject}, valid until ${material.cert.notAfter.toISOString()}) to ${values.dir}\n`);
  return 0;
}
