/** Where a piece of the model came from, for debugging and migration status. */
export interface Origin {
  /** Registry id, e.g. "file:///etc/isthmus" or "etcd://10.0.0.1:2379/dubbo". */
  readonly registry: string;
  /** The object inside the registry, e.g. "config/demo.yaml#2 ServiceEntry default/web". */
  readonly ref: string;
}
