import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { ApiKeysService } from '../../accounts/api-keys.service.ts'
import { allow, principalOf } from '../auth.ts'
import * as s from '../schemas.ts'
import { apiKeyView } from '../views.ts'

const tags = ['api keys']
const errors = s.errorResponses(400, 404)

export const apiKeysRoutes: FastifyPluginAsyncZod<{ apiKeys: ApiKeysService }> = async (app, { apiKeys }) => {
  app.post(
    '/api-keys',
    {
      config: allow('admin', 'API keys'),
      schema: {
        tags,
        operationId: 'createApiKey',
        summary: 'Create an API key; the key itself is shown only in this response',
        body: s.createApiKeyBody,
        response: {
          201: s.apiKeyView.extend({ key: z.string() }).describe('The key, with its secret: keep it now'),
          ...errors,
          ...s.bodyErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request)
      const { expiresAt, ...rest } = request.body
      const { record, key } = await apiKeys.create(principal.organizationId, {
        ...rest,
        expiresAt: expiresAt ? Date.parse(expiresAt) : null,
      })
      return reply.status(201).send({ ...apiKeyView(record), key })
    },
  )

  app.get(
    '/api-keys',
    {
      config: allow('admin', 'API keys'),
      schema: {
        tags,
        operationId: 'listApiKeys',
        summary: 'List API keys',
        response: {
          200: z
            .object({ items: z.array(s.apiKeyView) })
            .describe('The keys not revoked, without their secrets'),
          ...errors,
        },
      },
    },
    async (request) => {
      const principal = principalOf(request)
      const keys = await apiKeys.list(principal.organizationId)
      return { items: keys.filter((k) => k.revokedAt === null).map(apiKeyView) }
    },
  )

  app.delete(
    '/api-keys/:id',
    {
      config: allow('admin', 'API keys'),
      schema: {
        tags,
        operationId: 'revokeApiKey',
        summary: 'Revoke an API key',
        params: s.idParam,
        response: { 204: z.null().describe('Revoked'), ...errors },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request)
      await apiKeys.revoke(principal.organizationId, request.params.id)
      return reply.status(204).send(null)
    },
  )
}
