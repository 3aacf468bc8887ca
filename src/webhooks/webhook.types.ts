import type { WEBHOOK_RETRY_POLICIES } from '../domain/session-config.ts'

/**
 * How a delivery is signed. `standard` is Standard Webhooks (webhook-id, webhook-timestamp,
 * webhook-signature); the other two are the seeds' legacy forms, kept for receivers built
 * for them. `none` exists only for session webhooks configured without an HMAC key.
 */
export const SIGNATURE_SCHEMES = ['standard', 'hmac-sha512', 'sha256'] as const
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number]

export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const
/** pending (first try or a retry is due) → delivered | dead (retries exhausted, 410, disabled) */
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number]

export type RetryPolicyName = (typeof WEBHOOK_RETRY_POLICIES)[number]

export interface RetrySettings {
  policy: RetryPolicyName
  /** the base delay: constant waits it, linear multiplies it, exponential doubles it */
  delaySeconds: number
  /** tries in all, the first one included */
  attempts: number
}

export interface CustomHeader {
  name: string
  value: string
}

/** An organization webhook as services see it; `secret` is sealed by the SecretBox. */
export interface WebhookRecord {
  id: string
  organizationId: string
  url: string
  description: string | null
  /** patterns: `*`, `message.*`, or an exact type */
  events: string[]
  /** empty: every session of the organization */
  sessionIds: string[]
  secret: string
  customHeaders: CustomHeader[]
  signatureScheme: SignatureScheme
  retries: RetrySettings
  /** one in-flight delivery per session, oldest first */
  ordered: boolean
  enabled: boolean
  /** why the gateway disabled it (a 410), null when it was not the gateway */
  disabledReason: string | null
  createdAt: number
  updatedAt: number
}

/**
 * Where and how one delivery is sent. Organization webhooks are read fresh at each attempt
 * (so an edit or a disable applies to what is queued); session webhooks live in the
 * session's config, so their deliveries carry this snapshot taken when the event happened.
 */
export interface WebhookTarget {
  url: string
  /** sealed; null sends unsigned (a session webhook without an HMAC key) */
  sealedSecret: string | null
  scheme: SignatureScheme | 'none'
  customHeaders: CustomHeader[]
  retries: RetrySettings
}

export interface DeliveryRecord {
  id: string
  organizationId: string
  /** the organization webhook; null for a session webhook */
  webhookId: string | null
  /** what the circuit breaker and ordering key on: the webhook id, or `ses_…#<url hash>` */
  endpointKey: string
  sessionId: string | null
  eventId: string
  eventType: string
  /** the session webhook snapshot; null for organization webhooks */
  target: WebhookTarget | null
  /** `${endpointKey}|${sessionId}` when the endpoint wants ordered delivery */
  orderingKey: string | null
  /** process-monotonic enqueue order (epoch µs, bumped on ties) */
  seq: number
  status: DeliveryStatus
  /** every attempt ever made, replays included */
  attempts: number
  /** attempts made before the last replay: the retry budget counts from here */
  replayOffset: number
  nextAttemptAt: number
  lockedUntil: number | null
  leaseToken: string | null
  lastStatusCode: number | null
  lastError: string | null
  deliveredAt: number | null
  createdAt: number
  updatedAt: number
}

/** One HTTP attempt, as recorded (every one is). */
export interface AttemptRecord {
  deliveryId: string
  /** 1-based, across replays */
  number: number
  startedAt: number
  durationMs: number
  statusCode: number | null
  error: string | null
  /** the start of the response body, at most 1 KB */
  response: string | null
}

/** What one HTTP try produced. */
export interface SendResult {
  statusCode: number | null
  durationMs: number
  error: string | null
  response: string | null
  /** a failed try: the hold it put on its endpoint's other requests, to lift (`WebhookSender.resume`) or withdraw */
  hold?: number
}

/**
 * A try given up before anything was sent — it waited for a connection past what its
 * lease allows, or its endpoint's circuit opened meanwhile: no attempt to record.
 */
export interface NotSent {
  notSent: string
}

/** Which dead deliveries a bulk replay sends again: those created in [since, until) (epoch ms; no `until`: every one since). */
export interface ReplayRange {
  since: number
  until?: number
}
