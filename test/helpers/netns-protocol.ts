// What the netns suites' apps (netns-agent.ts) serve and how a call to them is described.
export const PORTS = { http: 8080, grpc: 9090, tcp: 7070 } as const;

export type Proto = 'http' | 'grpc' | 'tcp';

export interface Call {
  proto: Proto;
  host: string;
  port: number;
  /** Host / :authority: the same on every path (the name the app was configured with). */
  authority: string;
  /** HTTP only: header names as many legacy apps write them ("Host", "Content-Type"), not lower-case. */
  properCase?: boolean;
}
