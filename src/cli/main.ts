#!/usr/bin/env node
// isthmus <verb>: the command-line entry point.
import { bootstrap } from './bootstrap.ts';
import { register } from './register.ts';
import { serve } from './serve.ts';
import { UsageError } from './args.ts';
import { ProtoManifestError } from '../xds/proto.ts';

const HELP = `Usage: isthmus <command> [options]

An Istio-style control plane for fleets moving from legacy SOA registries to a mesh.

Commands:
  serve       serve the service model as xDS (default registry: ./config)
  bootstrap   print an Envoy (or proxyless gRPC) bootstrap pointing at Isthmus
  register    keep an app's providers registered in the SOA registry (etcd, ZooKeeper)
  agent       beside Envoy: the workload's key and certificate, served to Envoy over SDS
  ca init     a CA root in Istio's cacerts layout, for replicas to share
  validate    check manifest files and directories, one line per problem
  plan        dry run: the xDS changes a configuration would make, per connected proxy
  help        this text

Run 'isthmus <command> --help' for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'serve':
      return serve(rest);
    case 'bootstrap':
      return bootstrap(rest);
    case 'register':
      return register(rest);
    case 'ca': return (await import('./ca.ts')).ca(rest);
    case 'agent': return (await import('./agent.ts')).agent(rest);
    case 'validate': return (await import('./validate.ts')).validate(rest);
    case 'plan': return (await import('./plan.ts')).plan(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      throw new UsageError(`unknown command "${verb}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`isthmus: ${e.message}\nRun 'isthmus --help' for usage.\n`);
      process.exitCode = 2;
    } else if (e instanceof ProtoManifestError) {
      // A broken install: what is wrong is the whole message, the stack adds nothing.
      process.stderr.write(`isthmus: ${e.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`isthmus: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    }
  },
);
