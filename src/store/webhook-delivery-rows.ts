import type { Selectable } from 'kysely'
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
