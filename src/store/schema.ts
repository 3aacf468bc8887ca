import type { Generated, Kysely, Transaction } from 'kysely'
import type { MessagingTables } from './schema-messages.ts'

/*
 * Row shapes of every table, as both dialects return them. Conventions that keep one
 * migration set portable: ids are prefixed text (`ses_…`), timestamps are epoch
 * milliseconds (bigint in Postgres, parsed to number by the pool), booleans are 0/1
 * integers, and JSON is text.
 */

/** The roles an API key can carry, lowest first. */
export type ApiKeyRoleColumn = 'viewer' | 'operator' | 'admin'

export interface OrganizationsTable {
  id: string
  name: string
  created_at: number
}

export interface ApiKeysTable {
  id: string
  organization_id: string
  name: string
  /** the visible start of the key; unique so a key can be named without revealing it */
  prefix: string
  /** sha-256 hex of the full key */
  hash: string
  role: ApiKeyRoleColumn
  /** JSON array of session ids; null means every session of the organization */
  session_ids: string | null
  expires_at: number | null
  last_used_at: number | null
  created_at: number
  revoked_at: number | null
}

export interface SessionsTable {
  id: string
  organization_id: string
  name: string
  status: string
  desired_state: 'running' | 'stopped'
  sandbox: 0 | 1
  /** JSON; secrets inside are already sealed by the service */
  config: string
  /** JSON array of recent status changes */
  status_history: string
  last_error: string | null
  phone: string | null
  push_name: string | null
  jid: string | null
  lid: string | null
  platform: string | null
  device_id: number | null
  connected_at: number | null
  last_active_at: number | null
  reconnect_count: Generated<number>
  created_at: number
  updated_at: number
}

export interface AuthCredsTable {
  session_id: string
  /** ciphertext: encrypted before it reaches the store */
  creds: string
  updated_at: number
}

export interface AuthKeysTable {
  session_id: string
  type: string
  key_id: string
  /** ciphertext */
  value: string
}

export interface EventsTable {
  id: string
  organization_id: string
  session_id: string | null
  type: string
  /** JSON */
  payload: string
  created_at: number
}

export interface Tables extends MessagingTables {
  organizations: OrganizationsTable
  api_keys: ApiKeysTable
  sessions: SessionsTable
  auth_creds: AuthCredsTable
  auth_keys: AuthKeysTable
  events: EventsTable
  webhooks: WebhooksTable
  webhook_deliveries: WebhookDeliveriesTable
  webhook_attempts: WebhookAttemptsTable
  instance_settings: InstanceSettingsTable
}

/** Settings of the installation as a whole (migration 0008). */
export interface InstanceSettingsTable {
  name: string
  value: string
  created_at: number
}

/** Organization webhooks (migration 0002). */
export interface WebhooksTable {
  id: string
  organization_id: string
  url: string
  description: string | null
  /** JSON array of event patterns */
  events: string
  /** JSON array of session ids; empty means every session */
  session_ids: string
  /** sealed by the SecretBox */
  secret: string
  /** JSON array of { name, value } */
  custom_headers: string
  signature_scheme: string
  retry_policy: string
  retry_delay_seconds: number
  retry_attempts: number
  ordered: 0 | 1
  enabled: 0 | 1
  disabled_reason: string | null
  created_at: number
  updated_at: number
}

/** The webhook outbox: one row per (event, endpoint). */
export interface WebhookDeliveriesTable {
  id: string
  organization_id: string
  /** null for a session webhook (its target is in `target`) */
  webhook_id: string | null
  endpoint_key: string
  session_id: string | null
  event_id: string
  event_type: string
  /**
   * The exact JSON body sent at every attempt — or '' when it is the wire form of the event
   * (`event_id`), which is then stored once, in the events table, however many endpoints it
   * goes to (`EVENT_WIRE_BODY`).
   */
  body: string
  /** JSON WebhookTarget snapshot of a session webhook */
  target: string | null
  ordering_key: string | null
  seq: number
  status: string
  attempts: number
  replay_offset: number
  next_attempt_at: number
  locked_until: number | null
  lease_token: string | null
  last_status_code: number | null
  last_error: string | null
  delivered_at: number | null
  created_at: number
  updated_at: number
}

export interface WebhookAttemptsTable {
  delivery_id: string
  number: number
  started_at: number
  duration_ms: number
  status_code: number | null
  error: string | null
  response: string | null
}

/** What a repository method runs on: the database, or a transaction the caller opened. */
export type Executor = Kysely<Tables> | Transaction<Tables>
