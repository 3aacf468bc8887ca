import type { Insertable, Kysely, Selectable, Updateable } from 'kysely'
import { conflict, notFound } from '../domain/errors.ts'
import type { SessionConfig } from '../domain/session-config.ts'
import type { DesiredState, SessionStatus, StatusChange } from '../domain/session-status.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import { isUniqueViolation } from './dialect-sql.ts'
import type { Executor, SessionsTable, Tables } from './schema.ts'

/** A session row in domain shape: camelCase, booleans, parsed JSON. */
export interface SessionRecord {
  id: string
  organizationId: string
  name: string
  status: SessionStatus
  desiredState: DesiredState
  sandbox: boolean
  /** secrets inside are sealed by the service before they get here */
  config: SessionConfig
  statusHistory: StatusChange[]
  lastError: string | null
  phone: string | null
  pushName: string | null
  jid: string | null
  lid: string | null
  platform: string | null
  deviceId: number | null
  connectedAt: number | null
  lastActiveAt: number | null
  reconnectCount: number
  createdAt: number
  updatedAt: number
}

/** Any field but the identity; the caller sets `updatedAt` (services own the clock). */
export type SessionRowPatch = Partial<Omit<SessionRecord, 'id' | 'organizationId' | 'createdAt'>>

export interface SessionListQuery {
  status?: SessionStatus
  /** from a previous page's `nextCursor` */
  cursor?: string
  limit: number
  /** restricts to these sessions (an API key's session scope) */
  ids?: string[]
}

export interface SessionPage {
  items: SessionRecord[]
  nextCursor: string | null
  /** matches across all pages */
  total: number
}

const toRecord = (row: Selectable<SessionsTable>): SessionRecord => ({
  id: row.id,
  organizationId: row.organization_id,
  name: row.name,
  status: row.status as SessionStatus,
  desiredState: row.desired_state,
  sandbox: row.sandbox === 1,
  config: JSON.parse(row.config) as SessionConfig,
  statusHistory: JSON.parse(row.status_history) as StatusChange[],
  lastError: row.last_error,
  phone: row.phone,
  pushName: row.push_name,
  jid: row.jid,
  lid: row.lid,
  platform: row.platform,
  deviceId: row.device_id,
  connectedAt: row.connected_at,
  lastActiveAt: row.last_active_at,
  reconnectCount: row.reconnect_count,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
})

/** Maps each patch field to its column, so a new field cannot be forgotten silently. */
const COLUMNS: { [K in keyof Required<SessionRowPatch>]: keyof SessionsTable } = {
  name: 'name',
  status: 'status',
  desiredState: 'desired_state',
  sandbox: 'sandbox',
  config: 'config',
  statusHistory: 'status_history',
  lastError: 'last_error',
  phone: 'phone',
  pushName: 'push_name',
  jid: 'jid',
  lid: 'lid',
  platform: 'platform',
  deviceId: 'device_id',
  connectedAt: 'connected_at',
  lastActiveAt: 'last_active_at',
  reconnectCount: 'reconnect_count',
  updatedAt: 'updated_at',
}

function toColumns(patch: SessionRowPatch): Updateable<SessionsTable> {
  const values: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(patch)) {
    const column = COLUMNS[field as keyof SessionRowPatch]
    if (column === undefined || value === undefined) continue
    if (field === 'sandbox') values[column] = value ? 1 : 0
    else if (field === 'config' || field === 'statusHistory') values[column] = JSON.stringify(value)
    else values[column] = value
  }
  return values as Updateable<SessionsTable>
}

/**
 * How long a session read for the ingest may be reused. Writes through this repository
 * drop it at once; the bound is for a change made by another node (Postgres).
 */
const RECENT_READ_MS = 1_000

/** Sessions of every organization; tenant-facing reads take the organization id. */
export class SessionsRepository {
  private readonly db: Kysely<Tables>
  private readonly now: () => number
  private readonly recent = new Map<string, { record: SessionRecord; readAt: number }>()
  /** bumped by every write through this repository: a read that overlapped one is not kept */
  private readonly writes = new Map<string, number>()

  constructor(db: Kysely<Tables>, now: () => number = Date.now) {
    this.db = db
    this.now = now
  }

  /**
   * `getByIdUnscoped`, reusing a read of the last second: the ingest asks for the session
   * (its config, identity and metadata) with every message it stores, and the read, its
   * JSON columns decoded, was about 0.1 ms of the 2.5 ms CPU a received message cost
   * (bench/messages.ts, 2026-12-05). The record is shared: do not change it. A change made
   * in a transaction shows here once the write returns, or within a second of its commit.
   */
  async getRecent(id: string): Promise<SessionRecord | undefined> {
    const now = this.now()
    const hit = this.recent.get(id)
    if (hit && now - hit.readAt < RECENT_READ_MS) return hit.record
    const writesBefore = this.writes.get(id) ?? 0
    const record = await this.getByIdUnscoped(id)
    if (record && (this.writes.get(id) ?? 0) === writesBefore) this.recent.set(id, { record, readAt: now })
    else this.recent.delete(id)
    return record
  }

  /** Around every write: the recent read goes, and reads under way will not be kept. */
  private forget(id: string): void {
    this.recent.delete(id)
    this.writes.set(id, (this.writes.get(id) ?? 0) + 1)
  }

  /** @throws AppError `conflict` when the organization already has a session with this name */
  async create(record: SessionRecord, trx: Executor = this.db): Promise<void> {
    try {
      await trx
        .insertInto('sessions')
        .values({
          id: record.id,
          organization_id: record.organizationId,
          name: record.name,
          created_at: record.createdAt,
          ...toColumns(record),
        } as Insertable<SessionsTable>)
        .execute()
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict(`a session named "${record.name}" already exists`)
      throw error
    }
  }

  async getById(
    organizationId: string,
    id: string,
    trx: Executor = this.db,
  ): Promise<SessionRecord | undefined> {
    const row = await trx
      .selectFrom('sessions')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  /** For the session manager, which acts on sessions of every organization. */
  async getByIdUnscoped(id: string, trx: Executor = this.db): Promise<SessionRecord | undefined> {
    const row = await trx.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toRecord(row)
  }

  async getByName(
    organizationId: string,
    name: string,
    trx: Executor = this.db,
  ): Promise<SessionRecord | undefined> {
    const row = await trx
      .selectFrom('sessions')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('name', '=', name)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  /** Oldest first, keyed on (created_at, id) so pages never skip or repeat a row. */
  async listByOrganization(
    organizationId: string,
    query: SessionListQuery,
    trx: Executor = this.db,
  ): Promise<SessionPage> {
    if (query.ids?.length === 0) return { items: [], nextCursor: null, total: 0 }
    let filtered = trx.selectFrom('sessions').where('organization_id', '=', organizationId)
    if (query.status) filtered = filtered.where('status', '=', query.status)
    if (query.ids) filtered = filtered.where('id', 'in', query.ids)

    let page = filtered
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .limit(query.limit + 1)
    if (query.cursor) {
      const [createdAt, id] = decodeCursor(query.cursor, ['number', 'string'])
      page = page.where((eb) =>
        eb.or([
          eb('created_at', '>', createdAt),
          eb.and([eb('created_at', '=', createdAt), eb('id', '>', id)]),
        ]),
      )
    }
    const [rows, counted] = await Promise.all([
      page.execute(),
      filtered.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
    ])
    const items = rows.slice(0, query.limit).map(toRecord)
    const last = items.at(-1)
    return {
      items,
      nextCursor: rows.length > query.limit && last ? encodeCursor([last.createdAt, last.id]) : null,
      total: Number(counted.total),
    }
  }

  /** @throws AppError `not_found` when the session is gone */
  async update(id: string, patch: SessionRowPatch, trx: Executor = this.db): Promise<SessionRecord> {
    this.forget(id)
    const values = toColumns(patch)
    const row =
      Object.keys(values).length === 0
        ? await trx.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst()
        : await trx.updateTable('sessions').set(values).where('id', '=', id).returningAll().executeTakeFirst()
    this.forget(id)
    if (!row) throw notFound('session')
    return toRecord(row)
  }

  /** Removes the session; its credentials and keys go with it (ON DELETE CASCADE). */
  async delete(id: string, trx: Executor = this.db): Promise<void> {
    this.forget(id)
    await trx.deleteFrom('sessions').where('id', '=', id).execute()
    this.forget(id)
  }

  /** Sessions per status across organizations, for the metrics gauge. */
  async countByStatus(trx: Executor = this.db): Promise<Partial<Record<SessionStatus, number>>> {
    const rows = await trx
      .selectFrom('sessions')
      .select((eb) => ['status', eb.fn.countAll<number>().as('count')])
      .groupBy('status')
      .execute()
    return Object.fromEntries(rows.map((row) => [row.status, Number(row.count)]))
  }

  /** Every session, across organizations, that should be connected: what a restart restores. */
  async listDesiredRunning(trx: Executor = this.db): Promise<SessionRecord[]> {
    const rows = await trx
      .selectFrom('sessions')
      .selectAll()
      .where('desired_state', '=', 'running')
      .orderBy('created_at')
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }
}
