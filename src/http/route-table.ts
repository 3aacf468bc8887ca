import type { FastifyInstance } from 'fastify'
import { envelope } from './errors.ts'

/**
 * The server's not-found answer: 405 with `Allow` for a path some route takes under other
 * methods, 404 for a path none has. Registered before the routes, so the table sees each.
 */
export function answerUnmatched(app: FastifyInstance): void {
  const routes = new RouteTable()
  app.addHook('onRoute', (route) => {
    routes.add(route.method, route.url)
    // A plugin's '/' route answers at its prefix with and without the slash; one of them is told here.
    if (route.prefix && (route.routePath === '/' || route.routePath === '')) {
      routes.add(route.method, route.prefix)
      routes.add(route.method, `${route.prefix}/`)
    }
  })
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]
    const allowed = routes.methodsFor(request.url)
    // A route that found nothing to serve (a static file that is not there) is a 404 too.
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      return reply
        .status(405)
        .header('allow', allowed.join(', '))
        .send(
          envelope(
            'method_not_allowed',
            `${request.method} is not allowed on ${path}; it takes ${allowed.join(', ')}`,
            request.id,
          ),
        )
    }
    return reply.status(404).send(envelope('not_found', `no route ${request.method} ${path}`, request.id))
  })
}

/**
 * Which methods the server has for a path: a request whose path exists under another method
 * gets 405 with `Allow`, not a 404 that would say the path is wrong. Fed by an `onRoute`
 * hook with every route's pattern (`/api/v1/sessions/:id`), matched much as the router
 * matches them: a `:param` is one segment (perhaps empty), a `*` segment the rest of the
 * path, each segment percent-decoded on its own (`%2F` stays inside its segment).
 */
export class RouteTable {
  private readonly routes: { pattern: Pattern; methods: Set<string> }[] = []
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
   * The methods routes have for the path of `url` (as it came), sorted; empty when only
   * OPTIONS matches — CORS answers preflights on every path, which makes none of them exist.
   */
  methodsFor(url: string): string[] {
    const segments = (url.split('?')[0] ?? '').split('/').map(decodedSegment)
    const methods = new Set<string>()
    for (const route of this.routes) {
      if (matches(route.pattern, segments)) for (const method of route.methods) methods.add(method)
    }
    const sorted = [...methods].sort()
    return sorted.some((method) => method !== 'OPTIONS') ? sorted : []
  }
}

/** A route's segments: literal, any one segment (`:param`), or the rest of the path (`*`). */
type Pattern = (string | typeof PARAM | typeof REST)[]
const PARAM = Symbol('one segment')
const REST = Symbol('the rest of the path')

function patternOf(url: string): Pattern {
  return url.split('/').map((segment) => {
    if (segment === '*') return REST
    return segment.startsWith(':') ? PARAM : segment
  })
}

function matches(pattern: Pattern, segments: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const part = pattern[i]
    if (part === REST) return true
    const segment = segments[i]
    if (segment === undefined || (part !== PARAM && part !== segment)) return false
  }
  return segments.length === pattern.length
}

function decodedSegment(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
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
