import { z } from 'zod'
import { customHeadersSchema, WEBHOOK_RETRY_POLICIES, webhookUrlSchema } from '../domain/session-config.ts'
import { eventPattern } from '../events/event-filter.ts'
import type { CircuitStatus } from './circuit-breaker.ts'
import {
  type AttemptRecord,
  DELIVERY_STATUSES,
  type DeliveryRecord,
  type ReplayRange,
  SIGNATURE_SCHEMES,
  type WebhookRecord,
} from './webhook.types.ts'

/* Request and response shapes of `/api/v1/webhooks`: validation, types and OpenAPI in one. */

const iso = (ms: number): string => new Date(ms).toISOString()

const retryFields = {
  policy: z.enum(WEBHOOK_RETRY_POLICIES),
  delaySeconds: z.number().int().min(1).max(3600),
  attempts: z.number().int().min(1).max(50).describe('tries in all, the first included'),
}
const retries = z.object({
  policy: retryFields.policy.default('exponential'),
  delaySeconds: retryFields.delaySeconds.default(2),
  attempts: retryFields.attempts.default(15),
})
/** In an update, what is left out keeps its current value. */
const retriesPatch = z.object({
  policy: retryFields.policy.optional(),
  delaySeconds: retryFields.delaySeconds.optional(),
  attempts: retryFields.attempts.optional(),
})

const webhookFields = {
  url: webhookUrlSchema,
  description: z.string().max(200).nullable(),
  events: z.array(eventPattern).min(1).max(64),
  sessionIds: z
    .array(z.string().min(1).max(100))
    .max(100)
    .describe(
      "the sessions whose events it gets, by id or name (stored as ids); each must be one of the organization's",
    ),
  secret: z
    .string()
    .min(8, 'at least 8 characters')
    .max(256)
    .describe('standard scheme: whsec_<base64 of 24–64 bytes>; legacy schemes: any string (its UTF-8 bytes)'),
  customHeaders: customHeadersSchema,
  signatureScheme: z.enum(SIGNATURE_SCHEMES),
  retries,
  ordered: z.boolean().describe('one delivery in flight per session, oldest first'),
  enabled: z.boolean(),
}

export const createWebhookBody = z.object({
  ...webhookFields,
  description: webhookFields.description.optional(),
  events: webhookFields.events.default(['*']),
  sessionIds: webhookFields.sessionIds
    .default([])
    .describe('the sessions whose events it gets, by id or name (stored as ids); empty: every session'),
  secret: webhookFields.secret.optional().describe('omit to have one generated (shown once)'),
  customHeaders: webhookFields.customHeaders.default([]),
  signatureScheme: webhookFields.signatureScheme.default('standard'),
  retries: retries.default({ policy: 'exponential', delaySeconds: 2, attempts: 15 }),
  ordered: webhookFields.ordered.default(false),
  enabled: webhookFields.enabled.default(true),
})

export const updateWebhookBody = z
  .object({ ...webhookFields, retries: retriesPatch })
  .partial()
  .refine((body) => Object.keys(body).length > 0, 'give at least one field')

export const webhookParams = z.object({ id: z.string().min(1).max(100) })
export const deliveryParams = webhookParams.extend({ deliveryId: z.string().min(1).max(100) })

/** Which dead deliveries a bulk retry sends again: those created in [since, until). */
export const retryDeadBody = z
  // Strict: a misspelt `until` would otherwise widen the range to every one since.
  .strictObject({
    since: z.iso.datetime({ offset: true }).describe('dead deliveries created at or after this time'),
    until: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('…and before this one; every one since, when left out'),
  })
  .refine(
    (body) => {
      if (body.until === undefined) return true
      const [since, until] = [Date.parse(body.since), Date.parse(body.until)]
      // A malformed one has its own error.
      return Number.isNaN(since) || Number.isNaN(until) || until > since
    },
    { path: ['until'], message: 'must be after since' },
  )

export function toReplayRange(body: z.output<typeof retryDeadBody>): ReplayRange {
  return {
    since: Date.parse(body.since),
    ...(body.until === undefined ? {} : { until: Date.parse(body.until) }),
  }
}

export const retriedView = z.object({
  retried: z.number().int().describe('dead deliveries made due now, each with a fresh retry budget'),
})

export const listDeliveriesQuery = z.object({
  status: z.enum(DELIVERY_STATUSES).optional(),
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
})

export const webhookView = z
  .object({
    id: z.string(),
    url: z.string(),
    description: z.string().nullable(),
    events: z.array(z.string()),
    sessionIds: z.array(z.string()),
    secretSet: z.boolean(),
    customHeaders: z.array(z.object({ name: z.string(), value: z.string() })),
    signatureScheme: z.enum(SIGNATURE_SCHEMES),
    retries: z.object({
      policy: z.enum(WEBHOOK_RETRY_POLICIES),
      delaySeconds: z.number(),
      attempts: z.number(),
    }),
    ordered: z.boolean(),
    enabled: z.boolean(),
    disabledReason: z.string().nullable(),
    circuit: z
      .object({
        state: z
          .enum(['closed', 'open', 'half-open'])
          .describe(
            'closed: deliveries go out; open: the endpoint failed too often in a row, nothing is sent until nextProbeAt; half-open: one delivery goes as a probe, its success closes the circuit',
          ),
        consecutiveFailures: z.number().describe('failed tries in a row since the last success'),
        openSince: z
          .string()
          .nullable()
          .describe('since when it has been open or half-open; null while closed'),
        nextProbeAt: z
          .string()
          .nullable()
          .describe('when an open circuit lets its probe through; null otherwise'),
      })
      .describe(
        "the gateway's circuit breaker for this endpoint (in memory: a restart closes it). Deliveries held back by an open circuit stay pending and do not spend their retry budget",
      ),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Webhook' })

export const deliveryView = z
  .object({
    id: z.string(),
    webhookId: z.string().nullable(),
    url: z
      .string()
      .nullable()
      .describe(
        "a session webhook's delivery: the URL it goes to; null for an organization webhook's (see webhookId)",
      ),
    eventId: z.string(),
    eventType: z.string(),
    sessionId: z.string().nullable(),
    status: z.enum(DELIVERY_STATUSES),
    attempts: z.number(),
    nextAttemptAt: z.string().nullable().describe('when the next try is due; null unless pending'),
    lastStatusCode: z.number().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'WebhookDelivery' })

export const attemptView = z.object({
  number: z.number(),
  startedAt: z.string(),
  durationMs: z.number(),
  statusCode: z.number().nullable(),
  error: z.string().nullable(),
  response: z.string().nullable().describe('the start of the response body, at most 1 KB'),
})

export const testResultView = z.object({
  delivered: z.boolean(),
  eventId: z.string(),
  statusCode: z.number().nullable(),
  durationMs: z.number(),
  error: z.string().nullable(),
  response: z.string().nullable(),
})

/** A webhook as the API shows it: the secret never leaves, only that one is set. */
export function toWebhookView(webhook: WebhookRecord, circuit: CircuitStatus): z.infer<typeof webhookView> {
  return {
    id: webhook.id,
    url: webhook.url,
    description: webhook.description,
    events: webhook.events,
    sessionIds: webhook.sessionIds,
    secretSet: webhook.secret.length > 0,
    customHeaders: webhook.customHeaders,
    signatureScheme: webhook.signatureScheme,
    retries: webhook.retries,
    ordered: webhook.ordered,
    enabled: webhook.enabled,
    disabledReason: webhook.disabledReason,
    circuit: {
      state: circuit.state,
      consecutiveFailures: circuit.consecutiveFailures,
      openSince: circuit.openSince === null ? null : iso(circuit.openSince),
      nextProbeAt: circuit.nextProbeAt === null ? null : iso(circuit.nextProbeAt),
    },
    createdAt: iso(webhook.createdAt),
    updatedAt: iso(webhook.updatedAt),
  }
}

export function toDeliveryView(delivery: DeliveryRecord): z.infer<typeof deliveryView> {
  return {
    id: delivery.id,
    webhookId: delivery.webhookId,
    url: delivery.webhookId === null ? (delivery.target?.url ?? null) : null,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    sessionId: delivery.sessionId,
    status: delivery.status,
    attempts: delivery.attempts,
    nextAttemptAt: delivery.status === 'pending' ? iso(delivery.nextAttemptAt) : null,
    lastStatusCode: delivery.lastStatusCode,
    lastError: delivery.lastError,
    deliveredAt: delivery.deliveredAt === null ? null : iso(delivery.deliveredAt),
    createdAt: iso(delivery.createdAt),
    updatedAt: iso(delivery.updatedAt),
  }
}

export function toAttemptView(attempt: AttemptRecord): z.infer<typeof attemptView> {
  return {
    number: attempt.number,
    startedAt: iso(attempt.startedAt),
    durationMs: attempt.durationMs,
    statusCode: attempt.statusCode,
    error: attempt.error,
    response: attempt.response,
  }
}
