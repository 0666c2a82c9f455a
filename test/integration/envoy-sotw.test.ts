// Envoy on State-of-the-World ADS: routing by Host/:authority and port, and live manifest edits.
import { coreFlow } from './core-flow.ts';

coreFlow('sotw');
