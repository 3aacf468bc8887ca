import type { Kysely, Selectable, Updateable } from 'kysely'
import type {
  CustomHeader,
  RetryPolicyName,
  SignatureScheme,
  WebhookRecord,
} from '../webhooks/webhook.types.ts'
import type { Executor, Tables, WebhooksTable } from './schema.ts'

/** Every field an update may change; the caller sets `updatedAt`. */
export type WebhookPatch = Partial<Omit<WebhookRecord, 'id' | 'organizationId' | 'createdAt'>>

const toRecord = (row: Selectable<WebhooksTable>): WebhookRecord => ({
  id: row.id,
  organizationId: row.organization_id,
  url: row.url,
  description: row.description,
  events: JSON.parse(row.events) as string[],
  sessionIds: JSON.parse(row.session_ids) as string[],
  secret: row.secret,
  customHeaders: JSON.parse(row.custom_headers) as CustomHeader[],
  signatureScheme: row.signature_scheme as SignatureScheme,
  retries: {
    policy: row.retry_policy as RetryPolicyName,
    delaySeconds: row.retry_delay_seconds,
    attempts: row.retry_attempts,
  },
  ordered: row.ordered === 1,
  enabled: row.enabled === 1,
  disabledReason: row.disabled_reason,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
})

function toColumns(patch: WebhookPatch): Updateable<WebhooksTable> {
  const columns: Updateable<WebhooksTable> = {}
  if (patch.url !== undefined) columns.url = patch.url
  if (patch.description !== undefined) columns.description = patch.description
  if (patch.events !== undefined) columns.events = JSON.stringify(patch.events)
  if (patch.sessionIds !== undefined) columns.session_ids = JSON.stringify(patch.sessionIds)
  if (patch.secret !== undefined) columns.secret = patch.secret
  if (patch.customHeaders !== undefined) columns.custom_headers = JSON.stringify(patch.customHeaders)
  if (patch.signatureScheme !== undefined) columns.signature_scheme = patch.signatureScheme
  if (patch.retries !== undefined) {
    columns.retry_policy = patch.retries.policy
    columns.retry_delay_seconds = patch.retries.delaySeconds
    columns.retry_attempts = patch.retries.attempts
  }
  if (patch.ordered !== undefined) columns.ordered = patch.ordered ? 1 : 0
  if (patch.enabled !== undefined) columns.enabled = patch.enabled ? 1 : 0
  if (patch.disabledReason !== undefined) columns.disabled_reason = patch.disabledReason
  if (patch.updatedAt !== undefined) columns.updated_at = patch.updatedAt
  return columns
}

/**
 * How long the outbox reuses an organization's list of enabled webhooks, on SQLite. Every
 * change made through this repository drops the lists at once, and on SQLite this process
 * is the only writer. (On Postgres other nodes may write: a webhook one of them deleted
 * would still get deliveries here, which its foreign key refuses — so there, every
 * transaction reads the list.)
 */
const ENABLED_LIST_MS = 1_000

/** Organization webhooks. Tenant-facing reads take the organization id; the worker's do not. */
export class WebhooksRepository {
  private readonly db: Kysely<Tables>
  private readonly reuseLists: boolean
  private readonly enabledLists = new Map<string, { list: WebhookRecord[]; readAt: number }>()
  /** bumped around every write: a list read across one is not kept */
  private writes = 0
  /** `writes` at each webhook's last update, disable or delete by this process */
  private readonly lastWriteOf = new Map<string, number>()

  /** `reuseEnabledLists`: cache the outbox's reads (only where this process is the one writer) */
  constructor(db: Kysely<Tables>, options: { reuseEnabledLists?: boolean } = {}) {
    this.db = db
    this.reuseLists = options.reuseEnabledLists ?? false
  }

  async create(record: WebhookRecord, trx: Executor = this.db): Promise<void> {
    this.changed()
    await trx
      .insertInto('webhooks')
      .values({
        id: record.id,
        organization_id: record.organizationId,
        created_at: record.createdAt,
        url: record.url,
        description: record.description,
        events: JSON.stringify(record.events),
        session_ids: JSON.stringify(record.sessionIds),
        secret: record.secret,
        custom_headers: JSON.stringify(record.customHeaders),
        signature_scheme: record.signatureScheme,
        retry_policy: record.retries.policy,
        retry_delay_seconds: record.retries.delaySeconds,
        retry_attempts: record.retries.attempts,
        ordered: record.ordered ? 1 : 0,
        enabled: record.enabled ? 1 : 0,
        disabled_reason: record.disabledReason,
        updated_at: record.updatedAt,
      })
      .execute()
    this.changed()
  }

  async getById(organizationId: string, id: string, trx: Executor = this.db) {
    const row = await trx
      .selectFrom('webhooks')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  /** For the delivery worker, which acts for every organization. */
  async getByIdUnscoped(id: string, trx: Executor = this.db): Promise<WebhookRecord | undefined> {
    const row = await trx.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toRecord(row)
  }

  async listByOrganization(organizationId: string, trx: Executor = this.db): Promise<WebhookRecord[]> {
    const rows = await trx
      .selectFrom('webhooks')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }

  async listEnabledByOrganization(organizationId: string, trx: Executor = this.db): Promise<WebhookRecord[]> {
    const rows = await trx
      .selectFrom('webhooks')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('enabled', '=', 1)
      .execute()
    return rows.map(toRecord)
  }

  /**
   * What the outbox matches each event against: on SQLite, the enabled webhooks as read
   * within the last ENABLED_LIST_MS, so that events do not each cost a read of the same rows.
   */
  async listEnabledRecent(
    organizationId: string,
    trx: Executor = this.db,
  ): Promise<readonly WebhookRecord[]> {
    if (!this.reuseLists) return this.listEnabledByOrganization(organizationId, trx)
    const now = performance.now()
    const hit = this.enabledLists.get(organizationId)
    if (hit && now - hit.readAt < ENABLED_LIST_MS) return hit.list
    const writesBefore = this.writes
    const list = await this.listEnabledByOrganization(organizationId, trx)
    if (this.writes === writesBefore) this.enabledLists.set(organizationId, { list, readAt: now })
    return list
  }

  /**
   * Webhook writes this process has made (each counts twice: before and after): take it
   * before reading a webhook, and ask `changedSince` later whether that read is stale.
   */
  get version(): number {
    return this.writes
  }

  /** Whether this process has written webhook `id` since `version` (an edit made by another node is not seen). */
  changedSince(id: string, version: number): boolean {
    return (this.lastWriteOf.get(id) ?? 0) > version
  }

  /** Called before a write and after it, so that no read overlapping it is kept. */
  private changed(id?: string): void {
    this.writes++
    if (id !== undefined) this.lastWriteOf.set(id, this.writes)
    this.enabledLists.clear()
  }

  /** The updated webhook, or undefined when the organization has no such webhook. */
  async update(
    organizationId: string,
    id: string,
    patch: WebhookPatch,
    trx: Executor = this.db,
  ): Promise<WebhookRecord | undefined> {
    this.changed(id)
    const row = await trx
      .updateTable('webhooks')
      .set(toColumns(patch))
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst()
    this.changed(id)
    return row && toRecord(row)
  }

  /** The gateway turning a webhook off (its receiver answered 410 Gone). */
  async disable(id: string, reason: string, at: number, trx: Executor = this.db): Promise<void> {
    this.changed(id)
    await trx
      .updateTable('webhooks')
      .set({ enabled: 0, disabled_reason: reason, updated_at: at })
      .where('id', '=', id)
      .execute()
    this.changed(id)
  }

  /** Deletes the webhook with its deliveries and attempts; false when there was none. */
  async delete(organizationId: string, id: string, trx: Executor = this.db): Promise<boolean> {
    this.changed(id)
    const result = await trx
      .deleteFrom('webhooks')
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst()
    this.changed(id)
    return result.numDeletedRows > 0n
  }
}
