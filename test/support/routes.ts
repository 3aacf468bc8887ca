import type { FastifyInstance } from 'fastify'

export interface RouteEntry {
  method: string
  /** Fastify's pattern, e.g. `/api/v1/sessions/:id` */
  url: string
}

/**
 * Every route the Fastify router holds, read from `printRoutes({ commonPrefix: false })`:
 * the router's own table, so a route hidden from the OpenAPI document is listed too.
 * Each line of that tree is `<branches><segment> (<METHODS>)`; a segment's full path is
 * its ancestors' segments joined.
 */
export function registeredRoutes(app: FastifyInstance): RouteEntry[] {
  const routes: RouteEntry[] = []
  const ancestors: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = line.match(/^((?:[│ ] {3})*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/u)
    if (!match) {
      if (line.trim()) throw new Error(`cannot read the route line ${JSON.stringify(line)}`)
      continue
    }
    const depth = (match[1] ?? '').length / 4
    const segment = match[2] ?? ''
    ancestors.length = depth
    ancestors.push(segment)
    for (const method of (match[3] ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter(Boolean)) {
      routes.push({ method, url: ancestors.join('') })
    }
  }
  return routes
}

/** OpenAPI paths (`/sessions/{id}`) as Fastify patterns (`/sessions/:id`), with their methods. */
export function documentedRoutes(app: FastifyInstance): RouteEntry[] {
  const paths = (app.swagger() as { paths?: Record<string, Record<string, unknown>> }).paths ?? {}
  return Object.entries(paths).flatMap(([path, operations]) =>
    Object.keys(operations).map((method) => ({
      method: method.toUpperCase(),
      url: path.replace(/\{(\w+)\}/g, ':$1'),
    })),
  )
}
