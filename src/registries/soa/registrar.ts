// A registration agent: keeps providers registered for an app that cannot register itself.

export interface Registrar {
  /** Writes the providers and keeps them alive; re-registers after a lost lease or session. */
  start(): Promise<void>;
  /** Deregisters (revokes the lease / deletes the ephemeral nodes) and closes. */
  stop(): Promise<void>;
}
