// Metrics every registry adapter shares, declared once so that name, type and help agree.
import { metrics } from '../shared/metrics.ts';

export const registryRejections = metrics.gauge('isthmus_registry_rejections', 'Documents, files or provider keys a registry currently rejects.');
export const registryEvents = metrics.counter('isthmus_registry_events_total', 'Registry events by kind (fs_event, reload, dir_error, watch_error, ...).');

export const soaMalformed = metrics.counter('isthmus_soa_malformed_providers_total', 'Malformed provider keys or URLs seen in an SOA registry (each counted once while it lasts).');
export const soaRejected = metrics.gauge('isthmus_soa_rejected_providers', 'Provider keys an SOA registry currently rejects (malformed, or in conflict).');
export const soaProviders = metrics.gauge('isthmus_soa_providers', 'Provider keys an SOA registry currently serves.');
export const soaConnected = metrics.gauge('isthmus_soa_registry_connected', '1 while an SOA registry is connected and watching, else 0.');
export const soaRegistrations = metrics.counter('isthmus_soa_registrations_total', 'Leases granted and provider keys written by the registration agent.');
export const soaRegistrarErrors = metrics.counter('isthmus_soa_registrar_errors_total', 'Failed registration, keepalive or deregistration attempts, by stage.');
