import type { Selectable } from 'kysely'
import { invalidRequest } from '../domain/errors.ts'
import type {
  AttemptRecord,
  DeliveryRecord,
  DeliveryStatus,
  WebhookTarget,
} from '../webhooks/webhook.types.ts'
import type { WebhookAttemptsTable, WebhookDeliveriesTable } from './schema.ts'

/* Row ↔ domain mapping of the outbox tables, and the deliveries list cursor. */

export const toDeliveryRecord = (row: Selectable<WebhookDeliveriesTable>): DeliveryRecord => ({
  id: row.id,
  organizationId: row.organization_id,
  webhookId: row.webhook_id,
  endpointKey: row.endpoint_key,
  sessionId: row.session_id,
  eventId: row.event_id,
  eventType: row.event_type,
  body: row.body,
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

/** The cursor is opaque to callers: the (seq, id) of the last row of the page. */
export const encodeDeliveryCursor = (row: DeliveryRecord): string =>
  Buffer.from(JSON.stringify([row.seq, row.id])).toString('base64url')

export function decodeDeliveryCursor(cursor: string): [number, string] {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString())
    if (Array.isArray(value) && Number.isSafeInteger(value[0]) && typeof value[1] === 'string') {
      return [value[0], value[1]]
    }
  } catch {}
  throw invalidRequest('cursor is not valid', [
    { path: 'cursor', message: 'not a cursor from a previous page' },
  ])
}
