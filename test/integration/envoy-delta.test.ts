// Envoy on Delta ADS (`isthmus bootstrap --delta`): the same core flow as envoy-sotw.
import { coreFlow } from './core-flow.ts';

coreFlow('delta');
