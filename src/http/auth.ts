import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type ApiKeyRole, type Principal, roleAtLeast } from '../accounts/api-key.types.ts'
import type { ApiKeysService } from '../accounts/api-keys.service.ts'
import { AppError } from '../domain/errors.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
    /** the event-stream ticket the principal came from, when it did */
    streamTicket?: string
  }
}

/** The key from `X-API-Key` or `Authorization: Bearer`; never from the query string (it would end up in logs). */
export function apiKeyFrom(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key']
  if (typeof header === 'string' && header.trim()) return header.trim()
  const authorization = request.headers.authorization
  const match = authorization?.match(/^Bearer\s+(\S+)$/i)
  return match?.[1]
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
  ticketRoute?: { path: string; redeem(ticket: string): Promise<Principal> },
): void {
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith(prefix)) return
    const key = apiKeyFrom(request)
    if (!key && ticketRoute && request.url.split('?')[0] === ticketRoute.path) {
      const ticket = new URL(request.url, 'http://local').searchParams.get('ticket')
      if (ticket) {
        request.principal = await ticketRoute.redeem(ticket)
        request.streamTicket = ticket
        return
      }
    }
    request.principal = await apiKeys.authenticate(key)
  })
}

/** The caller, which must hold at least `role`. */
export function requireRole(request: FastifyRequest, role: ApiKeyRole): Principal {
  const principal = request.principal
  if (!principal)
    throw new AppError('unauthorized', 'missing API key: send it in X-API-Key or Authorization: Bearer')
  if (!roleAtLeast(principal.role, role)) {
    throw new AppError('forbidden', `this needs the ${role} role; the key has ${principal.role}`)
  }
  return principal
}

/**
 * The caller, an admin whose key is not limited to some sessions: what `what` touches
 * reaches across every session of the organization (its webhooks, its API keys — a key
 * limited to sessions must not mint or revoke one that is not).
 */
export function requireOrganizationAdmin(request: FastifyRequest, what: string): Principal {
  const principal = requireRole(request, 'admin')
  if (principal.sessionIds !== null) {
    throw new AppError('forbidden', `${what} need a key that is not limited to sessions`)
  }
  return principal
}
