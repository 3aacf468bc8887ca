import type { Selectable } from 'kysely'
import { fromStored, wireBody } from '../events/catalogue.ts'
import type {
  AttemptRecord,
  CustomHeader,
  DeliveryRecord,
  DeliveryStatus,
  RetryPolicyName,
  SignatureScheme,
  WebhookTarget,
} from '../webhooks/webhook.types.ts'
import type { WebhookAttemptsTable, WebhookDeliveriesTable } from './schema.ts'

/* Row ↔ domain mapping of the outbox tables. */

export const toDeliveryRecord = (row: Selectable<WebhookDeliveriesTable>): DeliveryRecord => ({
  id: row.id,
  organizationId: row.organization_id,
  webhookId: row.webhook_id,
  endpointKey: row.endpoint_key,
  sessionId: row.session_id,
  eventId: row.event_id,
  eventType: row.event_type,
  target: row.target === null ? null : (JSON.parse(row.target) as WebhookTarget),
  orderingKey: row.ordering_key,
  seq: row.seq,
  status: row.status as DeliveryStatus,
  attempts: row.attempts,
  replayOffset: row.replay_offset,
  nextAttemptAt: row.next_attempt_at,
  lockedUntil: row.locked_until,
  leaseToken: row.lease_token,
  lastStatusCode: row.last_status_code,
  lastError: row.last_error,
  deliveredAt: row.delivered_at,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
})

export const toAttemptRecord = (row: Selectable<WebhookAttemptsTable>): AttemptRecord => ({
  deliveryId: row.delivery_id,
  number: row.number,
  startedAt: row.started_at,
  durationMs: row.duration_ms,
  statusCode: row.status_code,
  error: row.error,
  response: row.response,
})

/**
 * A leased delivery: what sending it and recording the outcome take, and where it goes now.
 * Its `nextAttemptAt` is when it fell due; the row's has moved to the end of the lease.
 */
export interface ClaimedDelivery
  extends Pick<
    DeliveryRecord,
    | 'id'
    | 'webhookId'
    | 'endpointKey'
    | 'eventId'
    | 'seq'
    | 'attempts'
    | 'replayOffset'
    | 'nextAttemptAt'
    | 'lastStatusCode'
    | 'lastError'
    | 'lockedUntil'
    | 'leaseToken'
  > {
  /** the exact bytes to send; null when they were the wire form of an event no longer stored */
  body: string | null
  /**
   * Handed over at enqueue with its organization webhook as it stood then: the webhooks'
   * `version` before that read (a later write of that webhook by this process sends it
   * back, to be claimed and read afresh).
   */
  webhooksVersion?: number
  /**
   * The target of this attempt: a session webhook's snapshot, or the organization webhook
   * as it stood when the claim read it (so an edit or a disable applies to what is queued);
   * null when that webhook is disabled.
   */
  sendTo: WebhookTarget | null
}

/** The columns a claim reads: the delivery's (`d`) and its organization webhook's (`w`, null without one). */
export const CLAIM_COLUMNS = [
  ...[
    'id',
    'webhook_id',
    'endpoint_key',
    'event_id',
    'body',
    'target',
    'seq',
    'attempts',
    'replay_offset',
    'next_attempt_at',
    'last_status_code',
    'last_error',
  ].map((column) => `d.${column}`),
  ...[
    'url',
    'secret',
    'signature_scheme',
    'custom_headers',
    'retry_policy',
    'retry_delay_seconds',
    'retry_attempts',
    'enabled',
  ].map((column) => `w.${column} as w_${column}`),
  // The event, for a body stored with it (EVENT_WIRE_BODY).
  ...['type', 'organization_id', 'created_at', 'payload'].map((column) => `e.${column} as e_${column}`),
].join(', ')

/** A row as `CLAIM_COLUMNS` reads it. */
export interface ClaimRow
  extends Pick<
    Selectable<WebhookDeliveriesTable>,
    | 'id'
    | 'webhook_id'
    | 'endpoint_key'
    | 'event_id'
    | 'body'
    | 'target'
    | 'seq'
    | 'attempts'
    | 'replay_offset'
    | 'next_attempt_at'
    | 'last_status_code'
    | 'last_error'
  > {
  w_url: string | null
  w_secret: string | null
  w_signature_scheme: string | null
  w_custom_headers: string | null
  w_retry_policy: string | null
  w_retry_delay_seconds: number | null
  w_retry_attempts: number | null
  w_enabled: number | null
  e_type: string | null
  e_organization_id: string | null
  e_created_at: number | null
  e_payload: string | null
}

/** What `body` holds when the bytes are the wire form of the delivery's event, stored once with it. */
export const EVENT_WIRE_BODY = ''

/** The row's event columns, as a row carrying them names them (`e_…`). */
export interface EventColumns {
  event_id: string
  e_type: string | null
  e_organization_id: string | null
  e_created_at: number | null
  e_payload: string | null
}

/**
 * The bytes a delivery sends: its own body, or its event's wire form (built once per event
 * in `built`); null when that event is no longer stored.
 */
export function deliveryBody(
  body: string,
  event: EventColumns,
  built: Map<string, string> = new Map(),
): string | null {
  if (body !== EVENT_WIRE_BODY) return body
  let wire = built.get(event.event_id)
  if (wire === undefined) {
    if (event.e_payload === null || event.e_type === null) return null
    wire = wireBody(
      fromStored({
        id: event.event_id,
        type: event.e_type,
        organizationId: event.e_organization_id ?? '',
        createdAt: Number(event.e_created_at),
        payload: JSON.parse(event.e_payload),
      }),
    )
    built.set(event.event_id, wire)
  }
  return wire
}

/** `built`: the wire bodies of events built so far in this claim (50 endpoints, one event: built once). */
export const toClaimedDelivery = (row: ClaimRow, built?: Map<string, string>): ClaimedDelivery => ({
  id: row.id,
  webhookId: row.webhook_id,
  endpointKey: row.endpoint_key,
  eventId: row.event_id,
  body: deliveryBody(row.body, row, built),
  seq: row.seq,
  attempts: row.attempts,
  replayOffset: row.replay_offset,
  nextAttemptAt: row.next_attempt_at,
  lastStatusCode: row.last_status_code,
  lastError: row.last_error,
  lockedUntil: null,
  leaseToken: null,
  sendTo: claimedTarget(row),
})

/**
 * A session webhook's snapshot, or its organization webhook as it stands in the claim's
 * transaction; null when that webhook is disabled (or gone).
 */
function claimedTarget(row: ClaimRow): WebhookTarget | null {
  if (row.webhook_id === null) return row.target === null ? null : (JSON.parse(row.target) as WebhookTarget)
  if (row.w_enabled !== 1 || row.w_url === null || row.w_secret === null) return null
  return {
    url: row.w_url,
    sealedSecret: row.w_secret,
    scheme: row.w_signature_scheme as SignatureScheme,
    customHeaders: JSON.parse(row.w_custom_headers ?? '[]') as CustomHeader[],
    retries: {
      policy: row.w_retry_policy as RetryPolicyName,
      delaySeconds: Number(row.w_retry_delay_seconds),
      attempts: Number(row.w_retry_attempts),
    },
  }
}
