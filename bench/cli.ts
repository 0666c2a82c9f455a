// Command lines of the bench entry points: --help prints the usage, a bad option names itself.
import { type ParseArgsConfig, parseArgs } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<T extends Options> = ReturnType<typeof parseArgs<{ options: T }>>['values'];

export function benchOptions<const T extends Options>(name: string, usage: string, options: T): Values<T> {
  let values: Values<T> & { help?: boolean };
  try {
    values = parseArgs({ options: { ...options, help: { type: 'boolean' } } }).values as Values<T> & { help?: boolean };
  } catch (e) {
    process.stderr.write(`${name}: ${(e as Error).message}\n\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return values;
}
