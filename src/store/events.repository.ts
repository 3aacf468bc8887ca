import type { Kysely, Selectable } from 'kysely'
import type { StoredEvent } from '../events/catalogue.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import type { EventsTable, Executor, Tables } from './schema.ts'
import { EVENT_WIRE_BODY } from './webhook-delivery-rows.ts'

/** A stored domain event; `payload` is whatever the events service serialises (JSON). */
export interface EventRecord {
  id: string
  organizationId: string
  sessionId: string | null
  type: string
  payload: unknown
  createdAt: number
}

export interface EventListQuery {
  sessionId?: string
  /** only these sessions' events (an API key's scope) */
  sessionIds?: string[]
  types?: string[]
  /** only events at or after this time (epoch ms) */
  since?: number
  /** only events before this time (epoch ms) */
  until?: number
  /** only events before this one in the log's (created_at, id) order: the last of the page before */
  before?: EventPosition
  limit: number
}

/** Where an event sits in the log's (created_at, id) order. */
export interface EventPosition {
  createdAt: number
  id: string
}

const toRecord = (row: Selectable<EventsTable>): EventRecord => ({
  id: row.id,
  organizationId: row.organization_id,
  sessionId: row.session_id,
  type: row.type,
  payload: JSON.parse(row.payload),
  createdAt: row.created_at,
})

/** Events per insert statement (6 bound values each): far below either dialect's limit. */
const APPEND_CHUNK = 1000

/** The event log: written before publishing, so webhooks and streams can read what they missed. */
export class EventsRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  /**
   * Pass the transaction that made the change, so the change and its event commit together.
   * A batch is written in slices of `APPEND_CHUNK` rows, all in one transaction (the
   * caller's, or one of its own): SQLite refuses a statement with more than 32,766 bound
   * values, which one insert of some 5,400 events would pass.
   */
  async append(records: EventRecord[], trx: Executor = this.db): Promise<void> {
    if (records.length === 0) return
    if (records.length > APPEND_CHUNK && !trx.isTransaction) {
      await this.db.transaction().execute((own) => this.append(records, own))
      return
    }
    for (let i = 0; i < records.length; i += APPEND_CHUNK) {
      await trx
        .insertInto('events')
        .values(
          records.slice(i, i + APPEND_CHUNK).map((record) => ({
            id: record.id,
            organization_id: record.organizationId,
            session_id: record.sessionId,
            type: record.type,
            payload: JSON.stringify(record.payload),
            created_at: record.createdAt,
          })),
        )
        .execute()
    }
  }

  /** A deleted session takes its event history with it. */
  async deleteBySession(sessionId: string, trx: Executor = this.db): Promise<number> {
    const result = await trx.deleteFrom('events').where('session_id', '=', sessionId).executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  /**
   * deleteBySession, in two statements for a webhook outbox: first every event no delivery
   * still needs (none not yet delivered has its body in the event's row), then the rest,
   * returned — their deliveries are to be given their bodies. Each statement decides from
   * one snapshot, so an event committed meanwhile is either returned or left in place, never
   * deleted unseen (Postgres runs each statement on a fresh snapshot).
   */
  async deleteBySessionReturningCarried(sessionId: string, trx: Executor): Promise<StoredEvent[]> {
    await trx
      .deleteFrom('events')
      .where('session_id', '=', sessionId)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('webhook_deliveries')
              .select('webhook_deliveries.id')
              .whereRef('webhook_deliveries.event_id', '=', 'events.id')
              .where('webhook_deliveries.body', '=', EVENT_WIRE_BODY)
              .where('webhook_deliveries.status', '<>', 'delivered'),
          ),
        ),
      )
      .execute()
    const rows = await trx.deleteFrom('events').where('session_id', '=', sessionId).returningAll().execute()
    return rows.map(toRecord)
  }

  async getById(
    organizationId: string,
    id: string,
    trx: Executor = this.db,
  ): Promise<EventRecord | undefined> {
    const row = await trx
      .selectFrom('events')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  /** Oldest first, strictly after `cursor` in (created_at, id) order: what a reader that saw it missed. */
  async listAfter(
    organizationId: string,
    cursor: EventPosition,
    query: { sessionIds?: string[]; limit: number },
    trx: Executor = this.db,
  ): Promise<EventRecord[]> {
    if (query.sessionIds?.length === 0) return []
    let select = trx
      .selectFrom('events')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where((eb) =>
        eb.or([
          eb('created_at', '>', cursor.createdAt),
          eb.and([eb('created_at', '=', cursor.createdAt), eb('id', '>', cursor.id)]),
        ]),
      )
    if (query.sessionIds) select = select.where('session_id', 'in', query.sessionIds)
    const rows = await select.orderBy('created_at').orderBy('id').limit(query.limit).execute()
    return rows.map(toRecord)
  }

  /**
   * A page of `list`, newest first: `cursor` is the page before's `nextCursor`, which holds
   * its last event's (created_at, id), so events of one millisecond are never skipped or
   * repeated. @throws AppError `invalid_request` naming `cursor` for one not of ours
   */
  async listPage(
    organizationId: string,
    query: Omit<EventListQuery, 'before'> & { cursor?: string },
  ): Promise<{ items: EventRecord[]; nextCursor: string | null }> {
    const { cursor, ...rest } = query
    const before = cursor === undefined ? undefined : decodeCursor(cursor, ['number', 'string'])
    const rows = await this.list(organizationId, {
      ...rest,
      ...(before ? { before: { createdAt: before[0], id: before[1] } } : {}),
      limit: query.limit + 1,
    })
    const items = rows.slice(0, query.limit)
    const last = items.at(-1)
    return {
      items,
      nextCursor: rows.length > query.limit && last ? encodeCursor([last.createdAt, last.id]) : null,
    }
  }

  /** Newest first. */
  async list(organizationId: string, query: EventListQuery, trx: Executor = this.db): Promise<EventRecord[]> {
    if (query.types?.length === 0 || query.sessionIds?.length === 0) return []
    let select = trx.selectFrom('events').selectAll().where('organization_id', '=', organizationId)
    if (query.sessionId !== undefined) select = select.where('session_id', '=', query.sessionId)
    if (query.sessionIds) select = select.where('session_id', 'in', query.sessionIds)
    if (query.types) select = select.where('type', 'in', query.types)
    if (query.since !== undefined) select = select.where('created_at', '>=', query.since)
    if (query.until !== undefined) select = select.where('created_at', '<', query.until)
    const { before } = query
    if (before) {
      select = select.where((eb) =>
        eb.or([
          eb('created_at', '<', before.createdAt),
          eb.and([eb('created_at', '=', before.createdAt), eb('id', '<', before.id)]),
        ]),
      )
    }
    const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit).execute()
    return rows.map(toRecord)
  }

  /*
   * Retention. The pruner walks one organization at a time so every query is a range of
   * the (organization_id, created_at) index: a global "created_at < cutoff" has no index
   * and would scan the whole log on every batch.
   */

  /** The smallest organization id with events, after `after`: one index seek. */
  async nextOrganizationId(after?: string, trx: Executor = this.db): Promise<string | undefined> {
    let select = trx.selectFrom('events').select('organization_id')
    if (after !== undefined) select = select.where('organization_id', '>', after)
    const row = await select.orderBy('organization_id').limit(1).executeTakeFirst()
    return row?.organization_id
  }

  /** Oldest first: an organization's events created before `cutoff`, strictly after `after`. */
  async listCreatedBefore(
    organizationId: string,
    cutoff: number,
    query: { after?: EventPosition; limit: number },
    trx: Executor = this.db,
  ): Promise<EventPosition[]> {
    const { after } = query
    let select = trx
      .selectFrom('events')
      .select(['id', 'created_at'])
      .where('organization_id', '=', organizationId)
      .where('created_at', '<', cutoff)
    if (after) {
      select = select.where((eb) =>
        eb.or([
          eb('created_at', '>', after.createdAt),
          eb.and([eb('created_at', '=', after.createdAt), eb('id', '>', after.id)]),
        ]),
      )
    }
    const rows = await select.orderBy('created_at').orderBy('id').limit(query.limit).execute()
    return rows.map((row) => ({ id: row.id, createdAt: row.created_at }))
  }

  /**
   * Deletes those of `ids` that no webhook delivery refers to any more: call it after the
   * settled deliveries of these events were deleted, so what is left refers to an event still
   * owed (pending, leased or not) — or settled since, on Postgres, whose event the next pass
   * takes. A delivery's body may be its event's row, so no delivery outlives it here. The
   * outbox is read in the delete itself, so a delivery replayed after the pruner chose its
   * batch still keeps its event. Returns how many were deleted.
   */
  async deleteUnowed(ids: readonly string[], trx: Executor = this.db): Promise<number> {
    if (ids.length === 0) return 0
    const result = await trx
      .deleteFrom('events')
      .where('id', 'in', ids)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('webhook_deliveries')
              .select('webhook_deliveries.id')
              .whereRef('webhook_deliveries.event_id', '=', 'events.id'),
          ),
        ),
      )
      .executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
