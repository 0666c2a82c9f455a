// Key-space roots as every registry and store spells them.

/** `/dubbo/` → `/dubbo`; `dubbo` → `/dubbo`; `//a//` → `/a`; `` and `/` → `/`. */
export function normalizeRoot(root: string): string {
  return `/${root.replace(/^\/+|\/+$/g, '')}`;
}
