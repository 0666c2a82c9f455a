import { BehaviorSubject, type Observable } from 'rxjs';
import type { Registry } from '../model/registry.ts';
import type { Endpoint, RegistryState, Service, Workload } from '../model/types.ts';

/** A registry fed by code: for embedding, tests and benchmarks. */
export class MemoryRegistry implements Registry {
  readonly id: string;
  private readonly subject: BehaviorSubject<RegistryState>;
  readonly states: Observable<RegistryState>;

  constructor(id = 'memory://') {
    this.id = id;
    this.subject = new BehaviorSubject<RegistryState>({ id, synced: true, services: [], endpoints: [], workloads: [], rejections: [] });
    this.states = this.subject.asObservable();
  }

  get state(): RegistryState {
    return this.subject.value;
  }

  set(update: { services?: readonly Service[]; endpoints?: readonly Endpoint[]; workloads?: readonly Workload[] }): void {
    this.subject.next({ ...this.subject.value, ...update });
  }
}
