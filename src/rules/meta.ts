// What every rule reader is given about the document besides its spec.
import type { RuleLocation } from '../model/rules.ts';
import type { Origin } from '../model/types.ts';

export interface RuleMeta {
  readonly name: string;
  readonly namespace: string;
  readonly origin: Origin;
  readonly location: RuleLocation;
}
