// Istio routing rules (VirtualService, DestinationRule): reading, validation, cross-checks.
export { checkRules, destinations, findDestinationRule, type RuleCheckResult, ruleProblem } from './cross-checks.ts';
export { destinationRule } from './destination-rule.ts';
export { headerValueError, parseGoDuration, Warnings } from './fields.ts';
export {
  canonicalHost,
  hostCovers,
  type HostIndex,
  hostIndex,
  hostIndexOf,
  hostSyntaxError,
  isKnownHost,
  qualifyHost,
} from './hosts.ts';
export type { RuleMeta } from './meta.ts';
export { MAX_REGEX_LENGTH, re2Error } from './re2.ts';
export { GRPC_STATUS, RETRY_ON_POLICIES, virtualService } from './virtual-service.ts';
