// Errors of the Kubernetes registry that callers tell apart.

/** A kube:// URL or its client configuration cannot be used. */
export class KubeUrlError extends Error {}
