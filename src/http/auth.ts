import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type ApiKeyRole, type Principal, roleAtLeast } from '../accounts/api-key.types.ts'
import type { ApiKeysService } from '../accounts/api-keys.service.ts'
import { AppError } from '../domain/errors.ts'
import { decodedPath } from './route-table.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
    /** the event-stream ticket the principal came from, when it did */
    streamTicket?: string
  }
  interface FastifyContextConfig {
    /** who may call the route (`allow`); every route under the API prefix declares it */
    access?: RouteAccess
  }
}

/**
 * Who may call a route: a key with at least `role`; with `organizationWide` (what the route
 * reaches, for the error), one not limited to some sessions either.
 */
export interface RouteAccess {
  role: ApiKeyRole
  organizationWide?: string
}

/**
 * A route's `config`: who may call it. Checked as soon as the caller is known, before the
 * body is read, so a caller without the role is told so (403), not what a valid body would
 * look like (400).
 * Organization-wide routes reach across every session of the organization (its webhooks,
 * its API keys — a key limited to sessions must not mint or revoke one that is not).
 */
export const allow = (role: ApiKeyRole, organizationWide?: string): { access: RouteAccess } => ({
  access: organizationWide === undefined ? { role } : { role, organizationWide },
})

/** The key from `X-API-Key` or `Authorization: Bearer`; never from the query string (it would end up in logs). */
export function apiKeyFrom(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key']
  if (typeof header === 'string' && header.trim()) return header.trim()
  const authorization = request.headers.authorization
  const match = authorization?.match(/^Bearer\s+(\S+)$/i)
  return match?.[1]
}

/**
 * A key limited to some sessions, on a route about one session: checked with the role, before
 * the body is read. `check` throws unless the key may use the session `idOrName` names.
 */
export interface SessionScope {
  /** the routes about one session: those whose pattern starts with this, the session in `:id` */
  pattern: string
  check(principal: Principal, idOrName: string): Promise<void>
}

/**
 * Every route under `prefix` requires a valid key; the principal is set on the request.
 * The event stream alone also takes a ticket in the query, for browsers, whose WebSocket
 * and EventSource cannot send headers.
 */
export function registerApiKeyAuth(
  app: FastifyInstance,
  apiKeys: ApiKeysService,
  prefix: string,
  options: {
    ticketRoute?: { path: string; redeem(ticket: string): Promise<Principal> }
    sessionScope?: SessionScope
  } = {},
): void {
  const { ticketRoute, sessionScope } = options
  const guarded: { method: string | string[]; url: string; config?: { access?: RouteAccess } }[] = []
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith(prefix)) guarded.push(route)
  })
  // At ready rather than per route: a scope's own onRoute hook (the sandbox's) may set it after this one ran.
  app.addHook('onReady', async () => {
    const open = guarded.filter((route) => !route.config?.access)
    if (open.length > 0) {
      const names = open.map((route) => `${route.method} ${route.url}`).join(', ')
      throw new Error(`routes without access (config: allow(…)): ${names}`)
    }
  })
  app.addHook('onRequest', async (request) => {
    // By the route the router matched, which it found in the decoded path (`/%61pi/v1/…` is an
    // /api/v1 route too); by the raw path only for what matches no route, so that a key is
    // asked for before a route is said not to exist.
    const access = request.routeOptions.config.access
    if (!access && !decodedPath(request.url).startsWith(prefix)) return
    request.principal = await authenticate(request)
    // Before the body is read: a caller without the role is not told what a valid body would
    // be (400), nor has one of up to the route's body limit buffered and parsed on its behalf.
    if (!access) return
    const principal = checkAccess(request, access)
    // Likewise a key limited to other sessions than the one the route is about.
    const session = (request.params as { id?: unknown }).id
    if (
      sessionScope &&
      principal.sessionIds !== null &&
      typeof session === 'string' &&
      request.routeOptions.url?.startsWith(sessionScope.pattern)
    )
      await sessionScope.check(principal, session)
  })
  // However a request got past the hook above, no handler of a guarded route runs unchecked.
  app.addHook('preHandler', async (request) => {
    if (request.routeOptions.config.access) principalOf(request)
  })

  async function authenticate(request: FastifyRequest): Promise<Principal> {
    const key = apiKeyFrom(request)
    // The stream's route as matched; its raw path for a request that matches none (a HEAD).
    const path = request.routeOptions.url ?? request.url.split('?')[0]
    if (!key && ticketRoute && path === ticketRoute.path) {
      const ticket = new URL(request.url, 'http://local').searchParams.get('ticket')
      if (ticket) {
        const principal = await ticketRoute.redeem(ticket)
        request.streamTicket = ticket
        return principal
      }
    }
    return apiKeys.authenticate(key)
  }
}

/** The caller, who must have what `access` asks for. */
function checkAccess(request: FastifyRequest, { role, organizationWide }: RouteAccess): Principal {
  const principal = request.principal
  if (!principal)
    throw new AppError('unauthorized', 'missing API key: send it in X-API-Key or Authorization: Bearer')
  if (!roleAtLeast(principal.role, role)) {
    throw new AppError('forbidden', `this needs the ${role} role; the key has ${principal.role}`)
  }
  if (organizationWide !== undefined && principal.sessionIds !== null) {
    throw new AppError('forbidden', `${organizationWide} need a key that is not limited to sessions`)
  }
  return principal
}

/** The caller of a route, as its `allow` config admitted them (checked again: a handler never runs unchecked). */
export function principalOf(request: FastifyRequest): Principal {
  const access = request.routeOptions.config.access
  if (!access) throw new Error(`${request.method} ${request.routeOptions.url} declares no access`)
  return checkAccess(request, access)
}
