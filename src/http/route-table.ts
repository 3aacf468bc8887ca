/**
 * Which methods the server has for a path: a request whose path exists under another method
 * gets 405 with `Allow`, not a 404 that would say the path is wrong. Fed by an `onRoute`
 * hook with every route's pattern (`/api/v1/sessions/:id`), matched as the router matches
 * them: a `:param` is one segment, a trailing `*` the rest of the path.
 */
export class RouteTable {
  private readonly routes: { pattern: RegExp; methods: Set<string> }[] = []
  private readonly byUrl = new Map<string, Set<string>>()

  add(methods: string | readonly string[], url: string): void {
    let known = this.byUrl.get(url)
    if (!known) {
      known = new Set()
      this.byUrl.set(url, known)
      this.routes.push({ pattern: patternOf(url), methods: known })
    }
    for (const method of typeof methods === 'string' ? [methods] : methods) known.add(method.toUpperCase())
  }

  /**
   * The methods routes have for `path` (percent-decoded), sorted; empty when only OPTIONS
   * matches — CORS answers preflights on every path, which makes none of them exist.
   */
  methodsFor(path: string): string[] {
    const methods = new Set<string>()
    for (const route of this.routes) {
      if (route.pattern.test(path)) for (const method of route.methods) methods.add(method)
    }
    const sorted = [...methods].sort()
    return sorted.some((method) => method !== 'OPTIONS') ? sorted : []
  }
}

function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => {
      if (segment === '*') return '.*'
      if (segment.startsWith(':')) return '[^/]+'
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  return new RegExp(`^${source}$`)
}

/** A request's path as the router reads it (percent-decoded); as it came when it does not decode. */
export function decodedPath(url: string): string {
  const path = url.split('?')[0] ?? ''
  try {
    return decodeURIComponent(path)
  } catch {
    return path
  }
}
