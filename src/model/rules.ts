// Routing rules in the model: Istio VirtualService and DestinationRule, validated.
import type { Origin } from './types.ts';

export interface VirtualService {
  readonly name: string;
  readonly namespace: string;
  readonly origin: Origin;
  readonly spec: Readonly<Record<string, unknown>>;
}

export interface DestinationRule {
  readonly name: string;
  readonly namespace: string;
  readonly origin: Origin;
  readonly spec: Readonly<Record<string, unknown>>;
}
