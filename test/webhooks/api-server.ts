import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { ApiKeysService } from '../../src/accounts/api-keys.service.ts'
import { newId } from '../../src/domain/ids.ts'
import { registerApiKeyAuth } from '../../src/http/auth.ts'
import { handleError } from '../../src/http/errors.ts'
import { webhooksRoutes } from '../../src/http/routes/webhooks.routes.ts'
import { ApiKeysRepository } from '../../src/store/api-keys.repository.ts'
import { OrganizationsRepository } from '../../src/store/organizations.repository.ts'
import { type Harness, openHarness } from './harness.ts'

export interface ApiServer {
  harness: Harness
  http: FastifyInstance
  keys: { admin: string; operator: string; scopedAdmin: string; otherOrganization: string }
  /** the sessions `sessionIds` may name: one of this organization's, one of the other's */
  sessions: { sales: { id: string; name: string }; otherOrganizations: { id: string; name: string } }
  /** the session is gone, as a deleted one is: `sessionIds` no longer find it, until `restore` */
  deleteSession(id: string): { restore(): void }
  request(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    options?: { body?: unknown; key?: string | null },
  ): Promise<LightMyRequestResponse>
  close(): Promise<void>
}

/**
 * The webhook routes behind the gateway's own key authentication and error handler, as
 * `http/server.ts` mounts them, over the webhook test harness.
 */
export async function startApiServer(): Promise<ApiServer> {
  const sessions = {
    sales: { id: newId('session'), name: 'sales' },
    otherOrganizations: { id: newId('session'), name: 'support' },
  }
  // What SessionsService.find answers, for the two organizations' one session each.
  const owners = new Map<string, string>()
  const harness = await openHarness({
    sessions: {
      find: async (organizationId, idOrName) => {
        const found = Object.values(sessions).find((one) => one.id === idOrName || one.name === idOrName)
        return found && owners.get(found.id) === organizationId ? { id: found.id } : undefined
      },
    },
  })
  const apiKeys = new ApiKeysService(new ApiKeysRepository(harness.database.db), newId)
  const otherOrganizationId = newId('organization')
  await new OrganizationsRepository(harness.database.db).create({
    id: otherOrganizationId,
    name: 'Other',
    createdAt: Date.now(),
  })
  owners.set(sessions.sales.id, harness.organizationId)
  owners.set(sessions.otherOrganizations.id, otherOrganizationId)
  const key = async (organizationId: string, role: 'admin' | 'operator', sessionIds?: string[]) =>
    (await apiKeys.create(organizationId, { name: role, role, sessionIds })).key
  const keys = {
    admin: await key(harness.organizationId, 'admin'),
    operator: await key(harness.organizationId, 'operator'),
    scopedAdmin: await key(harness.organizationId, 'admin', ['ses_one']),
    otherOrganization: await key(otherOrganizationId, 'admin'),
  }

  const http = Fastify({ genReqId: () => newId('request') }).withTypeProvider<ZodTypeProvider>()
  http.setValidatorCompiler(validatorCompiler)
  http.setSerializerCompiler(serializerCompiler)
  http.setErrorHandler(handleError)
  http.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  registerApiKeyAuth(http, apiKeys, '/api/v1')
  await http.register(webhooksRoutes, {
    prefix: '/api/v1',
    webhooks: harness.module.service,
    deliveries: harness.module.deliveryLog,
  })
  await http.ready()

  return {
    harness,
    http,
    keys,
    sessions,
    deleteSession: (id) => {
      const owner = owners.get(id)
      owners.delete(id)
      return { restore: () => owner !== undefined && owners.set(id, owner) }
    },
    request: (method, url, { body, key: given } = {}) =>
      http.inject({
        method,
        url,
        ...(body === undefined ? {} : { payload: body as object }),
        headers: given === null ? {} : { 'x-api-key': given ?? keys.admin },
      }),
    close: async () => {
      await http.close()
      await apiKeys.close()
      await harness.close()
    },
  }
}
