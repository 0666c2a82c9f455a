// Application-level discovery in ZooKeeper, read with watches like the provider tree:
// `/services/<app>/<id>` instances, `<root>/mapping/<iface>` and the definitions and
// revision documents under `<root>/metadata`. Every read goes through the session's
// reader, so a lost connection, an expired session or a malformed node behave as for
// interface-level providers.
import { type AppInstance, type AppLevelPaths, type AppLevelTree, type InterfaceInfo, type Parsed, parseDefinition, parseInstance, parseMapping, parseOr, parseRevision } from './instances.ts';
import { ZK_CODES, type ZkClient, ZkError, type ZkWatcher } from './zk-client.ts';

/** What the session offers its reads. */
export interface ZkReads {
  readonly client: ZkClient;
  live(): boolean;
  /** Runs one read per key at a time (a request during a run makes it run once more). */
  run(key: string, fn: () => Promise<void>): void;
  /** One watcher per key for the session. */
  watcher(key: string, onEvent: () => void): ZkWatcher;
  /** A request retried while the connection is lost; undefined when the session is over. */
  request<T>(fn: () => Promise<T>): Promise<T | undefined>;
  problem(path: string, err: unknown): void;
  clearProblem(path: string): void;
  /** Something read changed what is served. */
  changed(): void;
  /** Shows a key in rejections and logs. */
  show(key: string): string;
}

// Definitions sit at most this deep below `metadata/<iface>` (version, group, side, application).
const MAX_DEFINITION_DEPTH = 4;

export class ZkAppLevel {
  private readonly r: ZkReads;
  private readonly tree: AppLevelTree;
  private readonly paths: AppLevelPaths;

  constructor(reads: ZkReads, tree: AppLevelTree, paths: AppLevelPaths) {
    this.r = reads;
    this.tree = tree;
    this.paths = paths;
  }

  start(): void {
    this.r.run('services', () => this.readServices());
    this.r.run('mapping', () => this.readMappingRoot());
  }

  private join(...parts: string[]): string {
    return parts.join('/').replace(/\/{2,}/g, '/');
  }

  /** Children of a watched node; [] while it does not exist (an exists watch waits for it); undefined when the session is over or the read failed. */
  private async children(key: string, path: string, again: () => void): Promise<string[] | undefined> {
    const w = this.r.watcher(`c:${key}`, again);
    try {
      const c = await this.r.request(() => this.r.client.getChildren(path, w));
      if (c !== undefined) this.r.clearProblem(path);
      return c;
    } catch (err) {
      if (err instanceof ZkError && err.code === ZK_CODES.NO_NODE) {
        const stat = await this.r.request(() => this.r.client.exists(path, w)).catch((e: unknown) => this.r.problem(path, e));
        if (stat) again();
        this.r.clearProblem(path);
        return [];
      }
      this.r.problem(path, err);
      return undefined;
    }
  }

  /** Data of a watched node; null when it does not exist (watched for creation); undefined when the session is over or the read failed. */
  private async data(key: string, path: string, again: () => void): Promise<string | null | undefined> {
    const w = this.r.watcher(`d:${key}`, again);
    try {
      const d = await this.r.request(() => this.r.client.getData(path, w));
      if (d !== undefined) this.r.clearProblem(path);
      return d;
    } catch (err) {
      if (err instanceof ZkError && err.code === ZK_CODES.NO_NODE) {
        const stat = await this.r.request(() => this.r.client.exists(path, w)).catch((e: unknown) => this.r.problem(path, e));
        if (stat) again();
        return null;
      }
      this.r.problem(path, err);
      return undefined;
    }
  }

  private parsed<T>(key: string, kind: string, name: string, fn: () => T): Parsed<T> {
    return parseOr(this.r.show(key), kind, name, fn);
  }

  // --- /services/<app>/<id> -----------------------------------------------------------

  private async readServices(): Promise<void> {
    const again = (): void => this.r.run('services', () => this.readServices());
    const apps = await this.children('services', this.paths.services, again);
    if (apps === undefined || !this.r.live()) return;
    const now = new Set(apps);
    for (const app of [...this.tree.instances.keys()]) {
      if (!now.has(app)) {
        this.tree.instances.delete(app);
        this.r.changed();
      }
    }
    for (const app of apps) if (!this.tree.instances.has(app)) this.r.run(`sa:${app}`, () => this.readApp(app));
  }

  private async readApp(app: string): Promise<void> {
    const path = this.join(this.paths.services, app);
    const ids = await this.children(`sa:${app}`, path, () => this.r.run(`sa:${app}`, () => this.readApp(app)));
    if (ids === undefined || !this.r.live()) return;
    const known = this.tree.instances.get(app) ?? new Map<string, Parsed<AppInstance>>();
    this.tree.instances.set(app, known);
    const now = new Set(ids);
    for (const id of [...known.keys()]) {
      if (!now.has(id)) {
        known.delete(id);
        this.r.changed();
      }
    }
    for (const id of ids) if (!known.has(id)) this.r.run(`si:${app}/${id}`, () => this.readInstance(app, id));
  }

  private async readInstance(app: string, id: string): Promise<void> {
    const path = this.join(this.paths.services, app, id);
    const data = await this.data(`si:${app}/${id}`, path, () => this.r.run(`si:${app}/${id}`, () => this.readInstance(app, id)));
    if (data === undefined || !this.r.live()) return;
    const known = this.tree.instances.get(app);
    if (!known) return;
    if (data === null) {
      if (known.delete(id)) this.r.changed();
      return;
    }
    const entry = this.parsed(path, 'instance', app, () => parseInstance(path, app, data));
    known.set(id, entry);
    this.r.changed();
    if ('value' in entry && entry.value.storage === 'remote' && entry.value.revision) {
      const rev = `${app}/${entry.value.revision}`;
      if (!this.tree.revisions.has(rev)) this.r.run(`rv:${rev}`, () => this.readRevision(app, entry.value.revision!));
    }
  }

  private async readRevision(app: string, revision: string): Promise<void> {
    const rev = `${app}/${revision}`;
    const path = this.join(this.paths.root, 'metadata', app, revision);
    const data = await this.data(`rv:${rev}`, path, () => this.r.run(`rv:${rev}`, () => this.readRevision(app, revision)));
    if (data === undefined || !this.r.live()) return;
    if (data === null) this.tree.revisions.delete(rev);
    else this.tree.revisions.set(rev, this.parsed(path, 'revision', app, () => parseRevision(app, revision, data)));
    this.r.changed();
  }

  // --- <root>/mapping/<iface> and <root>/metadata/<iface>/… -----------------------------

  private async readMappingRoot(): Promise<void> {
    const again = (): void => this.r.run('mapping', () => this.readMappingRoot());
    const ifaces = await this.children('mapping', this.join(this.paths.root, 'mapping'), again);
    if (ifaces === undefined || !this.r.live()) return;
    const now = new Set(ifaces);
    for (const iface of [...this.tree.mapping.keys()]) {
      if (!now.has(iface)) {
        this.tree.mapping.delete(iface);
        this.tree.definitions.delete(iface);
        this.r.changed();
      }
    }
    for (const iface of ifaces) if (!this.tree.mapping.has(iface)) this.r.run(`m:${iface}`, () => this.readMapping(iface));
  }

  private async readMapping(iface: string): Promise<void> {
    const path = this.join(this.paths.root, 'mapping', iface);
    const data = await this.data(`m:${iface}`, path, () => this.r.run(`m:${iface}`, () => this.readMapping(iface)));
    if (data === undefined || !this.r.live()) return;
    if (data === null) {
      this.tree.mapping.delete(iface);
      this.tree.definitions.delete(iface);
    } else {
      this.tree.mapping.set(iface, parseMapping(data));
      this.r.run(`md:${iface}`, () => this.readDefinitions(iface));
    }
    this.r.changed();
  }

  /** Every `provider/<app>` definition under `<root>/metadata/<iface>`; any change there reads them again. */
  private async readDefinitions(iface: string): Promise<void> {
    const again = (): void => this.r.run(`md:${iface}`, () => this.readDefinitions(iface));
    const found = new Map<string, Parsed<{ application: string; info: InterfaceInfo }>>();
    const walk = async (path: string, depth: number, parent: string): Promise<boolean> => {
      const kids = await this.children(`md:${path}`, path, again);
      if (kids === undefined || !this.r.live()) return false;
      for (const k of kids) {
        const child = `${path}/${k}`;
        if (parent === 'provider') {
          const data = await this.data(`md:${child}`, child, again);
          if (data === undefined) return false;
          if (data !== null) found.set(child, this.parsed(child, 'definition', iface, () => ({ application: k, info: parseDefinition(iface, data) })));
        } else if (k !== 'consumer' && depth < MAX_DEFINITION_DEPTH && !(await walk(child, depth + 1, k))) return false;
      }
      return true;
    };
    if (!(await walk(this.join(this.paths.root, 'metadata', iface), 0, ''))) return;
    this.tree.definitions.set(iface, found);
    this.r.changed();
  }
}
