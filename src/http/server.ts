import cors from '@fastify/cors'
import multipart from '@fastify/multipart'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import websocket from '@fastify/websocket'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod'
import type { Logger } from 'pino'
import type { ApiKeysService } from '../accounts/api-keys.service.ts'
import { newId } from '../domain/ids.ts'
import type { ConversationsService } from '../messages/conversations.service.ts'
import type { GroupsService } from '../messages/groups.service.ts'
import type { MessageActionsService } from '../messages/message-actions.service.ts'
import type { MessagesService } from '../messages/messages.service.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { EventStreamService } from '../realtime/event-stream.service.ts'
import { sandboxControlRoutes } from '../sandbox/control-api.ts'
import type { SandboxServer } from '../sandbox/server.ts'
import type { SessionsService } from '../sessions/sessions.service.ts'
import type { EventsRepository } from '../store/events.repository.ts'
import type { WebhookDeliveriesService } from '../webhooks/webhook-deliveries.service.ts'
import type { WebhooksService } from '../webhooks/webhooks.service.ts'
import { allow, registerApiKeyAuth } from './auth.ts'
import { handleError } from './errors.ts'
import { withKeyErrors, withoutUnusedComponents } from './openapi-document.ts'
import { answerUnmatched } from './route-table.ts'
import { apiKeysRoutes } from './routes/api-keys.routes.ts'
import { eventsRoutes } from './routes/events.routes.ts'
import { groupsRoutes } from './routes/groups.routes.ts'
import { healthRoutes } from './routes/health.routes.ts'
import { messageActionsRoutes } from './routes/message-actions.routes.ts'
import { messagesRoutes } from './routes/messages.routes.ts'
import { sessionsRoutes } from './routes/sessions.routes.ts'
import { sessionWebhookDeliveriesRoutes, webhooksRoutes } from './routes/webhooks.routes.ts'

export const API_PREFIX = '/api/v1'

export interface HttpDependencies {
  logger: Logger
  version: string
  corsOrigins: string[]
  apiKeys: ApiKeysService
  sessions: SessionsService
  messages: MessagesService
  conversations: ConversationsService
  groups: GroupsService
  messageActions: MessageActionsService
  eventStream: EventStreamService
  webhooks: WebhooksService
  webhookDeliveries: WebhookDeliveriesService
  events: EventsRepository
  metrics: Metrics
  readiness: () => Promise<{ ready: boolean; checks: Record<string, boolean> }>
  sandbox?: SandboxServer
  /** tests shorten it */
  connectionTimeoutMs?: number
}

/**
 * The HTTP server: plugins in order (external, app-wide hooks, routes), one error handler,
 * a request id on every response and log line, explicit timeouts.
 */
export async function buildHttpServer(deps: HttpDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger and Fastify's base logger differ only in generics
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    genReqId: () => newId('request'),
    // Request lines would put URLs with names and phone numbers in the log; we log what matters ourselves.
    logController: new LogController({ disableRequestLogging: true }),
    requestTimeout: 30_000,
    // A socket quiet this long is closed: longer than any handler waits (a webhook test
    // waits up to the request timeout, 10 s); event streams turn it off for themselves.
    connectionTimeout: deps.connectionTimeoutMs ?? 60_000,
    keepAliveTimeout: 72_000,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    // Errors the router meets before a route (a path parameter over maxParamLength, a
    // malformed URL) get the same envelope as every other.
    frameworkErrors: (error, request, reply) =>
      handleError(error, request, reply.header('x-request-id', request.id)),
  }).withTypeProvider<ZodTypeProvider>()

  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  app.setErrorHandler(handleError)
  // A path with other methods gets 405 and Allow; a path no route has, 404.
  answerUnmatched(app)
  // A JSON API: a text/plain body is refused as any other non-JSON one (415), rather than
  // parsed into a string the schema then calls "expected object". An empty one is no body:
  // `fetch(url, { method: 'POST', body: '' })` labels it text/plain (a start or stop action).
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') return done(null, undefined)
    done(Object.assign(new Error('not JSON'), { statusCode: 415 }), undefined)
  })
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    deps.metrics.httpDuration.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    )
    if (reply.statusCode >= 500) request.log.warn({ route, status: reply.statusCode }, 'request failed')
  })

  if (deps.corsOrigins.length) {
    await app.register(cors, {
      origin: deps.corsOrigins,
      // The API edits and deletes too; the plugin's default allows GET, HEAD and POST only.
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      // What a browser app may read of an answer beside the CORS-safelisted headers.
      exposedHeaders: ['x-request-id'],
    })
  }
  await app.register(multipart, { limits: { fileSize: 100 * 1024 * 1024, files: 1, fields: 5 } })
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'wagate API',
        version: deps.version,
        description: 'Self-hosted WhatsApp HTTP API gateway',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          bearer: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ apiKey: [] }, { bearer: [] }],
      // What wagate POSTs to webhook receivers: the same envelope as the stream and GET /events.
      webhooks: {
        event: {
          post: {
            summary: 'An event, delivered to an organization or session webhook',
            description:
              'Signed over the exact body bytes: by default Standard Webhooks (`webhook-id` = the event id, ' +
              '`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`); ' +
              'or `X-Webhook-Hmac` (hex HMAC-SHA512, with `X-Webhook-Hmac-Algorithm: sha512`); or ' +
              '`X-Webhook-Signature: sha256=<hex>`. Answer 2xx to acknowledge; 410 disables the webhook; ' +
              'anything else is retried by its policy. Deduplicate on `id`.',
            requestBody: {
              required: true,
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Event' } } },
            },
            responses: {
              '2XX': { description: 'received' },
              '410': { description: 'gone: the webhook is disabled' },
            },
          },
        },
      },
    },
    // Each operation says who may call it: the route's access, as the auth hook checks it.
    transform: (input) => {
      const transformed = jsonSchemaTransform(input)
      const access = input.route.config?.access
      if (!access || !transformed.schema) return transformed
      const { description } = transformed.schema as { description?: string }
      const needs = `Needs a key with the ${access.role} role${access.organizationWide ? ', not limited to sessions' : ''}.`
      return {
        ...transformed,
        schema: { ...transformed.schema, description: description ? `${description}\n\n${needs}` : needs },
      }
    },
    transformObject: (document) => withoutUnusedComponents(jsonSchemaTransformObject(document)),
  })
  await app.register(swaggerUi, { routePrefix: '/api/docs' })
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(healthRoutes, { metrics: deps.metrics, readiness: deps.readiness })
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } })
  registerApiKeyAuth(app, deps.apiKeys, API_PREFIX, {
    ticketRoute: {
      path: `${API_PREFIX}/events/stream`,
      // Checked against the store too: a ticket reopening its stream may outlive its key.
      redeem: async (ticket) => {
        const principal = deps.eventStream.redeemTicket(ticket)
        await deps.apiKeys.confirm(principal)
        return principal
      },
    },
    sessionScope: {
      pattern: `${API_PREFIX}/sessions/:id`,
      check: async (principal, idOrName) => {
        await deps.sessions.get(principal, idOrName)
      },
    },
  })
  await app.register(
    async (api) => {
      await api.register(sessionsRoutes, { sessions: deps.sessions })
      await api.register(apiKeysRoutes, { apiKeys: deps.apiKeys })
      await api.register(messagesRoutes, {
        sessions: deps.sessions,
        messages: deps.messages,
        conversations: deps.conversations,
      })
      await api.register(groupsRoutes, { sessions: deps.sessions, groups: deps.groups })
      await api.register(messageActionsRoutes, { sessions: deps.sessions, actions: deps.messageActions })
      await api.register(eventsRoutes, {
        stream: deps.eventStream,
        events: deps.events,
        sessions: deps.sessions,
      })
      await api.register(webhooksRoutes, { webhooks: deps.webhooks, deliveries: deps.webhookDeliveries })
      await api.register(sessionWebhookDeliveriesRoutes, {
        deliveries: deps.webhookDeliveries,
        sessions: deps.sessions,
      })
      const sandbox = deps.sandbox
      if (sandbox) {
        await api.register(
          async (scope) => {
            scope.addHook('onRoute', (route) => {
              // The sandbox can link numbers and impersonate people, in every session: admins of the
              // whole organization only.
              route.config = { ...route.config, ...allow('admin', 'sandbox controls') }
              // Grouped under their own tag in /api/docs; the README documents each call.
              const method = Array.isArray(route.method) ? route.method.join('/') : route.method
              route.schema = {
                ...route.schema,
                tags: ['sandbox'],
                summary: route.schema?.summary ?? `Sandbox control: ${method} ${route.url}`,
                response: withKeyErrors(route.schema?.response),
              }
            })
            await scope.register(sandboxControlRoutes, { sandbox })
          },
          { prefix: '/sandbox' },
        )
      }
    },
    { prefix: API_PREFIX },
  )
  return app
}
