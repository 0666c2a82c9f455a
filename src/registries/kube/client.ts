// A thin client for the Kubernetes API: JSON requests and watch streams, authenticated by
// a kubeconfig (or the pod's service account) through @kubernetes/client-node. Objects are
// kept as the API server sends them (plain JSON); the mapping code reads only what it needs.
import fs from 'node:fs';
import { HttpMethod, IsomorphicFetchHttpLibrary, KubeConfig, RequestContext, Watch } from '@kubernetes/client-node';

/** The few ObjectMeta fields the registry reads. */
export interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly generation?: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly deletionTimestamp?: string;
  readonly ownerReferences?: readonly { readonly kind?: string; readonly name?: string }[];
}

export interface KubeObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: ObjectMeta;
  readonly [field: string]: unknown;
}

export interface KubeList {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items?: readonly KubeObject[];
}

/** A watch event as the API server sends it; `object` is a Status for ERROR. */
export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | string;
  readonly object: KubeObject;
}

/** metav1.Status, as returned with errors. */
export interface KubeStatus {
  readonly kind?: 'Status';
  readonly code?: number;
  readonly reason?: string;
  readonly message?: string;
}

/**
 * An API error with the HTTP status (0 when there was no answer: refused, reset, timed
 * out). `recoverable` says whether trying again later can help without anyone acting.
 */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string | undefined;

  constructor(message: string, status: number, reason?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }

  /** 410 Gone: the resource version is too old; list again. */
  get expired(): boolean {
    return this.status === 410 || this.reason === 'Expired' || this.reason === 'Gone';
  }

  get notFound(): boolean {
    return this.status === 404;
  }

  get conflict(): boolean {
    return this.status === 409;
  }
}

/** Converts anything thrown by the HTTP layer or a Status body into a KubeApiError. */
export function toKubeError(err: unknown, what: string): KubeApiError {
  if (err instanceof KubeApiError) return err;
  const e = err as { statusCode?: number; code?: string; message?: string; cause?: { code?: string; message?: string } } | undefined;
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 0;
  const code = e?.cause?.code ?? e?.code;
  const detail = [code, e?.cause?.message ?? e?.message].filter(Boolean).join(' ');
  return new KubeApiError(`${what}: ${status ? `HTTP ${status} ` : ''}${detail || String(err)}`, status, undefined, { cause: err });
}

export function statusError(s: KubeStatus, what: string): KubeApiError {
  return new KubeApiError(`${what}: HTTP ${s.code ?? '?'} ${s.reason ?? ''}${s.message ? `: ${s.message}` : ''}`.trim(), s.code ?? 0, s.reason);
}

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | number | boolean | undefined>>;
  readonly body?: unknown;
  readonly timeoutMs?: number;
}

/** What the registry needs from an API server; tests may substitute a fake. */
export interface KubeApi {
  /** The server URL, for messages. */
  readonly server: string;
  /** A JSON request; resolves with the parsed body of a 2xx answer, rejects with KubeApiError. */
  request<T>(method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE', path: string, opts?: RequestOptions): Promise<T>;
  /**
   * Opens a watch stream. `onEvent` gets each event; the promise resolves when the server
   * closes the stream cleanly and rejects (KubeApiError) on an HTTP or network error.
   * Aborting `signal` ends the watch quietly. `onOpen` is called once the server has
   * accepted the watch (HTTP 200), before any event.
   */
  watch(
    path: string,
    query: Readonly<Record<string, string | number | boolean | undefined>>,
    onEvent: (e: WatchEvent) => void,
    signal: AbortSignal,
    onOpen?: () => void,
  ): Promise<void>;
}

export interface KubeConfigOptions {
  /** Kubeconfig context; the file's current context when absent. */
  readonly context?: string;
  /** Kubeconfig file; $KUBECONFIG or ~/.kube/config when absent. */
  readonly kubeconfig?: string;
}

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Inside a pod (service account token mounted, no file or context asked for): in-cluster config. */
export function loadKubeConfig(opts: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else if (!opts.context && process.env.KUBERNETES_SERVICE_HOST && fs.existsSync(SA_TOKEN)) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new Error(`kubeconfig has no context "${opts.context}"; known contexts: ${known.join(', ') || 'none'}`);
    }
    kc.setCurrentContext(opts.context);
  }
  if (!kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster; pass a context or a kubeconfig with one');
  return kc;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** KubeApi over a KubeConfig: TLS, tokens and client certificates as kubectl uses them. */
export class KubeConfigApi implements KubeApi {
  readonly server: string;
  private readonly kc: KubeConfig;
  private readonly http = new IsomorphicFetchHttpLibrary();
  private readonly watcher: Watch;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.server = kc.getCurrentCluster()!.server.replace(/\/+$/, '');
    this.watcher = new Watch(kc);
  }

  async request<T>(method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE', path: string, opts: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const what = `${method} ${url.pathname}`;
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    ctx.setHeaderParam('Accept', 'application/json');
    if (opts.body !== undefined) {
      ctx.setHeaderParam('Content-Type', method === 'PATCH' ? 'application/merge-patch+json' : 'application/json');
      ctx.setBody(JSON.stringify(opts.body));
    }
    ctx.setSignal(AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS));
    let status: number;
    let text: string;
    try {
      await this.kc.applySecurityAuthentication(ctx);
      const res = await this.http.send(ctx).toPromise();
      status = res.httpStatusCode;
      text = await res.body.text();
    } catch (err) {
      throw toKubeError(err, what);
    }
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (status < 200 || status > 299) {
      const s = (body ?? {}) as KubeStatus;
      throw statusError({ ...s, code: status, ...(s.message ? {} : { message: text.slice(0, 200) }) }, what);
    }
    return body as T;
  }

  watch(
    path: string,
    query: Readonly<Record<string, string | number | boolean | undefined>>,
    onEvent: (e: WatchEvent) => void,
    signal: AbortSignal,
    onOpen?: () => void,
  ): Promise<void> {
    const what = `WATCH ${path}`;
    let opened = false;
    const open = (): void => {
      if (opened) return;
      opened = true;
      onOpen?.();
    };
    return new Promise<void>((resolve, reject) => {
      let controller: AbortController | undefined;
      let settled = false;
      const finish = (err: unknown): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted || !err) resolve();
        else reject(toKubeError(err, what));
      };
      const onAbort = (): void => {
        controller?.abort();
        finish(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.watcher
        .watch(
          path,
          { ...query },
          (type, object) => {
            if (settled) return;
            open(); // events can arrive before watch() has returned its controller
            onEvent({ type, object: (object ?? {}) as KubeObject });
          },
          finish,
        )
        .then((c) => {
          controller = c;
          if (signal.aborted || settled) c.abort();
          else open(); // watch() returns once the server has answered 200
        }, finish);
    });
  }
}
