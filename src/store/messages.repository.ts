import { type Insertable, type Kysely, type Selectable, sql, type Updateable } from 'kysely'
import { invalidRequest, notFound } from '../domain/errors.ts'
import type {
  MediaDescriptor,
  MessageStatus,
  MessageType,
  NormalizedMessage,
} from '../messages/message.types.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import type { Executor, Tables } from './schema.ts'
import type { MessagesTable } from './schema-messages.ts'

/** A stored message: the normalized content plus its outbound state. */
export interface MessageRecord extends NormalizedMessage {
  /** `msg_…` */
  id: string
  sessionId: string
  /** outbound only; null for messages others sent */
  status: MessageStatus | null
  failureReason: string | null
  /** base64 of the encoded proto.Message */
  raw: string | null
  /** what to send, while the message waits in the outbound queue; null otherwise */
  sendRequest: unknown
  /** not before this time (epoch ms), while queued */
  sendAfter: number | null
  createdAt: number
  updatedAt: number
}

/** Any field but the identity; `updatedAt` defaults to now. */
export type MessagePatch = Partial<Omit<MessageRecord, 'id' | 'sessionId' | 'createdAt'>>

export interface TimelineQuery {
  /** older than this: a page's `nextCursor` */
  before?: string
  /** newer than this: a page's `previousCursor` */
  after?: string
  limit: number
}

/** Always newest first; `nextCursor` goes older (pass as `before`), `previousCursor` newer (as `after`). */
export interface TimelinePage {
  items: MessageRecord[]
  nextCursor: string | null
  previousCursor: string | null
}

const toRecord = (row: Selectable<MessagesTable>): MessageRecord => ({
  id: row.id,
  sessionId: row.session_id,
  waId: row.wa_id,
  chatJid: row.chat_jid,
  chatLid: row.chat_lid,
  fromMe: row.from_me === 1,
  senderJid: row.sender_jid,
  senderLid: row.sender_lid,
  pushName: row.push_name,
  timestamp: row.timestamp,
  type: row.type as MessageType,
  text: row.text,
  media: row.media === null ? null : (JSON.parse(row.media) as MediaDescriptor),
  quotedId: row.quoted_id,
  mentions: JSON.parse(row.mentions) as string[],
  targetId: row.target_id,
  details: row.details === null ? null : (JSON.parse(row.details) as Record<string, unknown>),
  status: row.status as MessageStatus | null,
  failureReason: row.failure_reason,
  raw: row.raw,
  sendRequest: row.send_request === null ? null : JSON.parse(row.send_request),
  sendAfter: row.send_after,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
})

/** Maps each patch field to its column, so a new field cannot be forgotten silently. */
const COLUMNS: { [K in keyof Required<MessagePatch>]: keyof MessagesTable } = {
  waId: 'wa_id',
  chatJid: 'chat_jid',
  chatLid: 'chat_lid',
  fromMe: 'from_me',
  senderJid: 'sender_jid',
  senderLid: 'sender_lid',
  pushName: 'push_name',
  timestamp: 'timestamp',
  type: 'type',
  text: 'text',
  media: 'media',
  quotedId: 'quoted_id',
  mentions: 'mentions',
  targetId: 'target_id',
  details: 'details',
  status: 'status',
  failureReason: 'failure_reason',
  raw: 'raw',
  sendRequest: 'send_request',
  sendAfter: 'send_after',
  updatedAt: 'updated_at',
}
const JSON_FIELDS = new Set<string>(['media', 'mentions', 'details', 'sendRequest'])
const json = (value: unknown) => (value === null ? null : JSON.stringify(value))

/** `absentAsNull` for inserts: every row of a batch then names the same columns. */
function toColumns(patch: MessagePatch, absentAsNull = false): Updateable<MessagesTable> {
  const values: Record<string, unknown> = {}
  for (const field of Object.keys(COLUMNS) as (keyof MessagePatch)[]) {
    const column = COLUMNS[field]
    const value: unknown = patch[field] === undefined && absentAsNull ? null : patch[field]
    if (value === undefined) continue
    if (field === 'fromMe') values[column] = value ? 1 : 0
    else values[column] = JSON_FIELDS.has(field) ? json(value) : value
  }
  return values as Updateable<MessagesTable>
}

const toRow = (record: MessageRecord): Insertable<MessagesTable> =>
  ({
    id: record.id,
    session_id: record.sessionId,
    created_at: record.createdAt,
    ...toColumns(record, true),
  }) as Insertable<MessagesTable>

/** The forward order of outbound statuses; `failed` stands outside it. */
const FORWARD: readonly MessageStatus[] = ['pending', 'sent', 'delivered', 'read', 'played']
/** The status column's place in FORWARD; NULL for failed and inbound rows, which never move. */
const STATUS_RANK = sql<number>`case ${sql.ref('status')} ${sql.join(
  FORWARD.map((status, rank) => sql`when ${sql.lit(status)} then ${sql.lit(rank)}`),
  sql` `,
)} end`

/** 25 columns a row: 200 rows stay far below either dialect's bound-parameter limit. */
const ROWS_PER_INSERT = 200

/** Messages, with the outbound queue living in the same rows. */
export class MessagesRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  /** False when the chat already holds a message with this WhatsApp id (redelivery). */
  async insertIfNew(record: MessageRecord, trx: Executor = this.db): Promise<boolean> {
    return (await this.insertMany([record], trx)) === 1
  }

  /** Inserts the new ones, skipping WhatsApp ids the chat already holds; returns how many were new. */
  async insertMany(records: MessageRecord[], trx: Executor = this.db): Promise<number> {
    return (await this.insertNew(records, trx)).size
  }

  /**
   * Inserts the new ones, skipping WhatsApp ids the chat already holds (and repeats among
   * `records`, of which the first counts); returns the ids of the rows written.
   */
  async insertNew(records: MessageRecord[], trx: Executor = this.db): Promise<Set<string>> {
    const inserted = new Set<string>()
    for (const part of chunks(records, ROWS_PER_INSERT)) {
      // RETURNING lists only the rows written, on both dialects; a skipped row returns nothing.
      const rows = await trx
        .insertInto('messages')
        .values(part.map(toRow))
        .onConflict((oc) => oc.columns(['session_id', 'chat_jid', 'wa_id']).doNothing())
        .returning('id')
        .execute()
      for (const row of rows) inserted.add(row.id)
    }
    return inserted
  }

  async getById(sessionId: string, id: string, trx: Executor = this.db): Promise<MessageRecord | undefined> {
    const row = await trx
      .selectFrom('messages')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('id', '=', id)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  /** WhatsApp ids are unique per chat only: without `chatJid`, the most recent match. */
  async getByWaId(
    sessionId: string,
    waId: string,
    chatJid?: string,
    trx: Executor = this.db,
  ): Promise<MessageRecord | undefined> {
    let select = trx
      .selectFrom('messages')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('wa_id', '=', waId)
    if (chatJid !== undefined) select = select.where('chat_jid', '=', chatJid)
    const row = await select.orderBy('timestamp', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst()
    return row && toRecord(row)
  }

  /** @throws AppError `not_found` when the message is gone */
  async update(id: string, patch: MessagePatch, trx: Executor = this.db): Promise<MessageRecord> {
    // updated_at is bookkeeping no rule reads, so the wall clock stands in when none is given.
    const values = toColumns({ updatedAt: Date.now(), ...patch })
    const row = await trx
      .updateTable('messages')
      .set(values)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst()
    if (!row) throw notFound('message')
    return toRecord(row)
  }

  /**
   * Applies a receipt in one statement, so receipts racing each other cannot move a status
   * back: forward only along pending < sent < delivered < read < played, and `failed` only
   * from pending or sent. Undefined when nothing changed (unknown id, or not forward).
   */
  async updateStatusByWaId(
    sessionId: string,
    waId: string,
    status: MessageStatus,
    at: number,
    trx: Executor = this.db,
  ): Promise<MessageRecord | undefined> {
    const rows = await trx
      .updateTable('messages')
      .set({ status, updated_at: at })
      .where('session_id', '=', sessionId)
      .where('wa_id', '=', waId)
      .where((eb) =>
        status === 'failed'
          ? eb('status', 'in', ['pending', 'sent'])
          : eb(STATUS_RANK, '<', sql.lit(FORWARD.indexOf(status))),
      )
      .returningAll()
      .execute()
    const latest = rows.toSorted((a, b) => b.timestamp - a.timestamp)[0]
    return latest && toRecord(latest)
  }

  /**
   * A chat's messages, keyed on (timestamp, id) so equal timestamps never skip or repeat a
   * row. Going newer (`after`) reads oldest first from the cursor, then reverses the page.
   */
  async listByChat(
    sessionId: string,
    chatJid: string,
    query: TimelineQuery,
    trx: Executor = this.db,
  ): Promise<TimelinePage> {
    if (query.before !== undefined && query.after !== undefined) {
      throw invalidRequest('give before or after, not both', [
        { path: 'querystring.after', message: 'not with before' },
      ])
    }
    const older = query.after === undefined
    const field = older ? 'before' : 'after'
    const given = query[field]
    const cursor = given === undefined ? undefined : decodeCursor(given, ['number', 'string'], field)
    const timeline = trx
      .selectFrom('messages')
      .where('session_id', '=', sessionId)
      .where('chat_jid', '=', chatJid)
    const beyond = (key: readonly [number, string], op: '<' | '>') =>
      timeline.where((eb) => eb(eb.refTuple('timestamp', 'id'), op, eb.tuple(key[0], key[1])))

    const direction = older ? 'desc' : 'asc'
    const rows = await (cursor ? beyond(cursor, older ? '<' : '>') : timeline)
      .selectAll()
      .orderBy('timestamp', direction)
      .orderBy('id', direction)
      .limit(query.limit + 1)
      .execute()
    const window = rows.slice(0, query.limit).map(toRecord)
    const items = older ? window : window.reverse()
    const newest = items[0]
    const oldest = items.at(-1)
    if (!newest || !oldest) return { items, nextCursor: null, previousCursor: null }

    const more = rows.length > query.limit
    // Behind the page lies the cursor's own side; without a cursor we are at the newest end.
    const edge = older ? newest : oldest
    const behind =
      cursor !== undefined &&
      (await beyond([edge.timestamp, edge.id], older ? '>' : '<')
        .select('id')
        .limit(1)
        .executeTakeFirst()) !== undefined
    return {
      items,
      nextCursor: (older ? more : behind) ? encodeCursor([oldest.timestamp, oldest.id]) : null,
      previousCursor: (older ? behind : more) ? encodeCursor([newest.timestamp, newest.id]) : null,
    }
  }

  /** Queued messages due to go, in the order they are to go: (send_after, created_at). */
  async claimDue(
    sessionId: string,
    now: number,
    limit: number,
    trx: Executor = this.db,
  ): Promise<MessageRecord[]> {
    const rows = await trx
      .selectFrom('messages')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('status', '=', 'pending')
      .where('send_after', '<=', now)
      .orderBy('send_after')
      .orderBy('created_at')
      .orderBy('id')
      .limit(limit)
      .execute()
    return rows.map(toRecord)
  }

  /**
   * Messages sent since `since` that WhatsApp's server has not acknowledged: their request is
   * kept until it does (`takeSendRequest`), so a send a dropped connection lost can go again.
   * Oldest first.
   */
  async listUnacknowledged(
    sessionId: string,
    since: number,
    trx: Executor = this.db,
  ): Promise<MessageRecord[]> {
    const rows = await trx
      .selectFrom('messages')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('status', '=', 'sent')
      .where('send_request', 'is not', null)
      .where('updated_at', '>=', since)
      .orderBy('timestamp')
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }

  /**
   * Forgets the kept send request of the messages `waIds` (acknowledged by the server) or, with
   * `olderThan`, of every sent message not acknowledged before then; the requests they held,
   * to clean up after (a media file).
   */
  async takeSendRequests(
    sessionId: string,
    which: { waIds: readonly string[] } | { olderThan: number },
  ): Promise<unknown[]> {
    if ('waIds' in which && which.waIds.length === 0) return []
    return this.db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('messages')
        .select(['id', 'send_request'])
        .where('session_id', '=', sessionId)
        .where('status', '!=', 'pending')
        .where('send_request', 'is not', null)
        .where((eb) =>
          'waIds' in which ? eb('wa_id', 'in', [...which.waIds]) : eb('updated_at', '<', which.olderThan),
        )
        .execute()
      if (rows.length === 0) return []
      await trx
        .updateTable('messages')
        .set({ send_request: null })
        .where(
          'id',
          'in',
          rows.map((row) => row.id),
        )
        .execute()
      return rows.flatMap((row) =>
        row.send_request === null ? [] : [JSON.parse(row.send_request) as unknown],
      )
    })
  }

  /** When the next queued message falls due; undefined when nothing is queued. */
  async nextSendAfter(sessionId: string, trx: Executor = this.db): Promise<number | undefined> {
    const row = await trx
      .selectFrom('messages')
      .select((eb) => eb.fn.min('send_after').as('next'))
      .where('session_id', '=', sessionId)
      .where('status', '=', 'pending')
      .executeTakeFirst()
    return row?.next == null ? undefined : Number(row.next)
  }

  async countPending(sessionId: string, trx: Executor = this.db): Promise<number> {
    return this.count(sessionId, true, trx)
  }

  async countBySession(sessionId: string, trx: Executor = this.db): Promise<number> {
    return this.count(sessionId, false, trx)
  }

  /** Returns how many were deleted. */
  async deleteBySession(sessionId: string, trx: Executor = this.db): Promise<number> {
    const result = await trx.deleteFrom('messages').where('session_id', '=', sessionId).executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  private async count(sessionId: string, pendingOnly: boolean, trx: Executor): Promise<number> {
    let select = trx.selectFrom('messages').where('session_id', '=', sessionId)
    if (pendingOnly) select = select.where('status', '=', 'pending')
    const row = await select.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()
    return Number(row.count)
  }
}

/*
 * Helpers the messaging repositories share: statement chunking.
 */

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const result: T[][] = []
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size))
  return result
}
