import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { SessionsService } from '../../sessions/sessions.service.ts'
import * as dto from '../../webhooks/webhook.dto.ts'
import type { WebhookRecord } from '../../webhooks/webhook.types.ts'
import type { DeliveryDetail, WebhookDeliveriesService } from '../../webhooks/webhook-deliveries.service.ts'
import type { WebhooksService } from '../../webhooks/webhooks.service.ts'
import { allow, principalOf } from '../auth.ts'
import { bodyErrorResponses, errorResponses, sessionIdParam } from '../schemas.ts'

const tags = ['webhooks']
const errors = errorResponses(400, 404, 409)

const deliveryPageView = z.object({ items: z.array(dto.deliveryView), nextCursor: z.string().nullable() })

const deliveryDetailView = dto.deliveryView.extend({
  payload: z
    .unknown()
    .describe(
      'the event as sent; null once the event is no longer stored (deleted with its session) and the delivery had been delivered or given up',
    ),
  attemptLog: z.array(dto.attemptView),
})

function toDeliveryDetailView({
  delivery,
  body,
  attempts,
}: DeliveryDetail): z.infer<typeof deliveryDetailView> {
  return {
    ...dto.toDeliveryView(delivery),
    payload: body === null ? null : (JSON.parse(body) as unknown),
    attemptLog: attempts.map(dto.toAttemptView),
  }
}

/** Organization webhooks see every session's events. */
const webhookAdmins = allow('admin', 'organization webhooks')

export const webhooksRoutes: FastifyPluginAsyncZod<{
  webhooks: WebhooksService
  deliveries: WebhookDeliveriesService
}> = async (app, { webhooks, deliveries }) => {
  /** A webhook as the API shows it, with its endpoint's circuit now. */
  const withCircuit = (webhook: WebhookRecord) => dto.toWebhookView(webhook, webhooks.circuit(webhook.id))
  app.post(
    '/webhooks',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'createWebhook',
        summary: 'Create an organization webhook; a generated secret is shown only in this response',
        body: dto.createWebhookBody,
        response: {
          201: dto.webhookView
            .extend({ secret: z.string().optional() })
            .describe('The webhook, with its secret when the gateway generated one: keep it now'),
          ...errors,
          ...bodyErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const { organizationId } = principalOf(request)
      const { webhook, generatedSecret } = await webhooks.create(organizationId, request.body)
      const view = withCircuit(webhook)
      return reply.status(201).send(generatedSecret ? { ...view, secret: generatedSecret } : view)
    },
  )

  app.get(
    '/webhooks',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'listWebhooks',
        summary: 'List organization webhooks',
        response: {
          200: z.object({ items: z.array(dto.webhookView) }).describe('The organization’s webhooks'),
          ...errors,
        },
      },
    },
    async (request) => {
      const { organizationId } = principalOf(request)
      const items = await webhooks.list(organizationId)
      return { items: items.map(withCircuit) }
    },
  )

  app.get(
    '/webhooks/:id',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'getWebhook',
        summary: 'Get a webhook',
        params: dto.webhookParams,
        response: { 200: dto.webhookView.describe('The webhook'), ...errors },
      },
    },
    async (request) => {
      const { organizationId } = principalOf(request)
      const webhook = await webhooks.get(organizationId, request.params.id)
      return withCircuit(webhook)
    },
  )

  app.patch(
    '/webhooks/:id',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'updateWebhook',
        summary: 'Change a webhook; enabling it again clears why the gateway disabled it',
        params: dto.webhookParams,
        body: dto.updateWebhookBody,
        response: { 200: dto.webhookView.describe('The webhook, changed'), ...errors, ...bodyErrorResponses },
      },
    },
    async (request) => {
      const { organizationId } = principalOf(request)
      const webhook = await webhooks.update(organizationId, request.params.id, request.body)
      return withCircuit(webhook)
    },
  )

  app.delete(
    '/webhooks/:id',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'deleteWebhook',
        summary: 'Delete a webhook with its deliveries',
        params: dto.webhookParams,
        response: { 204: z.null().describe('Deleted'), ...errors },
      },
    },
    async (request, reply) => {
      const { organizationId } = principalOf(request)
      await webhooks.delete(organizationId, request.params.id)
      return reply.status(204).send(null)
    },
  )

  app.get(
    '/webhooks/:id/deliveries',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'listWebhookDeliveries',
        summary: "List a webhook's deliveries, newest first",
        params: dto.webhookParams,
        querystring: dto.listDeliveriesQuery,
        response: { 200: deliveryPageView.describe('A page of deliveries, newest first'), ...errors },
      },
    },
    async (request) => {
      const { organizationId } = principalOf(request)
      const page = await deliveries.listDeliveries(organizationId, request.params.id, request.query)
      return { items: page.items.map(dto.toDeliveryView), nextCursor: page.nextCursor }
    },
  )

  app.get(
    '/webhooks/:id/deliveries/:deliveryId',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'getWebhookDelivery',
        summary: 'Get a delivery with every attempt',
        params: dto.deliveryParams,
        response: {
          200: deliveryDetailView.describe('The delivery, its payload and every attempt'),
          ...errors,
        },
      },
    },
    async (request) => {
      const { organizationId } = principalOf(request)
      const { id, deliveryId } = request.params
      return toDeliveryDetailView(await deliveries.getDelivery(organizationId, id, deliveryId))
    },
  )

  app.post(
    '/webhooks/:id/deliveries/:deliveryId/retry',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'retryWebhookDelivery',
        summary: 'Send a dead delivery again, with a fresh retry budget',
        params: dto.deliveryParams,
        response: { 202: dto.deliveryView.describe('Accepted: the delivery, due again'), ...errors },
      },
    },
    async (request, reply) => {
      const { organizationId } = principalOf(request)
      const { id, deliveryId } = request.params
      const delivery = await deliveries.retryDelivery(organizationId, id, deliveryId)
      return reply.status(202).send(dto.toDeliveryView(delivery))
    },
  )

  app.post(
    '/webhooks/:id/deliveries/retry',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'retryDeadWebhookDeliveries',
        summary: 'Send every dead delivery created in a time range again, with a fresh retry budget',
        description:
          'The way back from an outage that outlasted the retry schedule: the dead deliveries created in [since, until) ' +
          'are due at once (or, while its circuit is open, when it lets a probe through), oldest first, each with the ' +
          'full retry policy again.',
        params: dto.webhookParams,
        body: dto.retryDeadBody,
        response: {
          202: dto.retriedView.describe('Accepted: how many dead deliveries are due again'),
          ...errors,
          ...bodyErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const { organizationId } = principalOf(request)
      const range = dto.toReplayRange(request.body)
      return reply
        .status(202)
        .send(await deliveries.retryDeadDeliveries(organizationId, request.params.id, range))
    },
  )

  app.post(
    '/webhooks/:id/test',
    {
      config: webhookAdmins,
      schema: {
        tags,
        operationId: 'testWebhook',
        summary: 'Send a signed webhook.test event now and report the outcome',
        params: dto.webhookParams,
        response: {
          200: dto.testResultView.describe('The outcome: delivered or not, and how the receiver answered'),
          ...errors,
        },
      },
    },
    async (request) => {
      const { organizationId } = principalOf(request)
      return webhooks.test(organizationId, request.params.id)
    },
  )
}

/**
 * A session's own webhooks (its config's) have no id of their own: their deliveries are
 * the session's. Operators manage sessions' configs, so they see and replay these.
 */
export const sessionWebhookDeliveriesRoutes: FastifyPluginAsyncZod<{
  deliveries: WebhookDeliveriesService
  sessions: SessionsService
}> = async (app, { deliveries, sessions }) => {
  const sessionDeliveryParams = sessionIdParam.extend({ deliveryId: z.string().min(1).max(100) })

  /** The session `id` names, for the operator whose key may use it, with its own webhooks (its config's). */
  const operatorSession = async (request: FastifyRequest, id: string) => {
    const principal = principalOf(request)
    const session = await sessions.get(principal, id)
    return {
      organizationId: principal.organizationId,
      session: { id: session.id, webhooks: session.config.webhooks },
    }
  }

  app.get(
    '/sessions/:id/webhook-deliveries',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'listSessionWebhookDeliveries',
        summary: "List the deliveries of a session's own webhooks, newest first",
        params: sessionIdParam,
        querystring: dto.listDeliveriesQuery,
        response: { 200: deliveryPageView.describe('A page of deliveries, newest first'), ...errors },
      },
    },
    async (request) => {
      const { organizationId, session } = await operatorSession(request, request.params.id)
      const page = await deliveries.listSessionDeliveries(organizationId, session.id, request.query)
      return { items: page.items.map(dto.toDeliveryView), nextCursor: page.nextCursor }
    },
  )

  app.get(
    '/sessions/:id/webhook-deliveries/:deliveryId',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'getSessionWebhookDelivery',
        summary: "Get a delivery of a session's own webhook with every attempt",
        params: sessionDeliveryParams,
        response: {
          200: deliveryDetailView.describe('The delivery, its payload and every attempt'),
          ...errors,
        },
      },
    },
    async (request) => {
      const { organizationId, session } = await operatorSession(request, request.params.id)
      return toDeliveryDetailView(
        await deliveries.getSessionDelivery(organizationId, session.id, request.params.deliveryId),
      )
    },
  )

  app.post(
    '/sessions/:id/webhook-deliveries/retry',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'retryDeadSessionWebhookDeliveries',
        summary: "Send every dead delivery of a session's own webhooks created in a time range again",
        description:
          "Each is sent as the session's webhook at its URL is now, with a fresh retry budget; those whose URL " +
          'is no longer in the config are skipped (counted in skipped). Due at once, or, while its circuit is open, ' +
          'when it lets a probe through.',
        params: sessionIdParam,
        body: dto.retryDeadBody,
        response: {
          202: dto.retriedView
            .extend({
              skipped: z
                .number()
                .int()
                .describe("dead deliveries in the range whose webhook is no longer in the session's config"),
            })
            .describe('Accepted: how many dead deliveries are due again, and how many were skipped'),
          ...errors,
          ...bodyErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const { organizationId, session } = await operatorSession(request, request.params.id)
      const range = dto.toReplayRange(request.body)
      return reply
        .status(202)
        .send(await deliveries.retrySessionDeadDeliveries(organizationId, session, range))
    },
  )

  app.post(
    '/sessions/:id/webhook-deliveries/:deliveryId/retry',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'retrySessionWebhookDelivery',
        summary: "Send a dead delivery of a session's own webhook again, with a fresh retry budget",
        params: sessionDeliveryParams,
        response: { 202: dto.deliveryView.describe('Accepted: the delivery, due again'), ...errors },
      },
    },
    async (request, reply) => {
      const { organizationId, session } = await operatorSession(request, request.params.id)
      const delivery = await deliveries.retrySessionDelivery(
        organizationId,
        session,
        request.params.deliveryId,
      )
      return reply.status(202).send(dto.toDeliveryView(delivery))
    },
  )
}
