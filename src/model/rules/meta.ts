// What every rule reader is given about the document besides its spec.
import type { RuleLocation } from './types.ts';
import type { Origin } from '../origin.ts';

export interface RuleMeta {
  readonly name: string;
  readonly namespace: string;
  readonly origin: Origin;
  readonly location: RuleLocation;
}
