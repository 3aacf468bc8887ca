import { type Kysely, type Selectable, sql, type Updateable } from 'kysely'
import { notFound } from '../domain/errors.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import { containsIgnoringCase } from './dialect-sql.ts'
import { chunks } from './messages.repository.ts'
import type { Executor, Tables } from './schema.ts'
import type { ChatsTable } from './schema-messages.ts'

/** A chat as the session sees it: 1:1 by phone JID (or LID), or a group. */
export interface ChatRecord {
  sessionId: string
  jid: string
  lid: string | null
  name: string | null
  /** epoch ms of the newest message */
  lastMessageAt: number | null
  /** our id (`msg_…`) of the newest message */
  lastMessageId: string | null
  unreadCount: number
  archived: boolean
  pinned: boolean
  mutedUntil: number | null
  updatedAt: number
}

/** Any field but the identity; `updatedAt` defaults to now. */
export type ChatPatch = Partial<Omit<ChatRecord, 'sessionId' | 'jid'>>

/** What a history sync knows about a chat: only the given fields are written. */
export type ChatUpsert = ChatPatch & { jid: string }

/** A new message in a chat. */
export interface ChatActivity {
  jid: string
  lid?: string
  name?: string
  messageId: string
  at: number
  /** messages to add to the unread count */
  addUnread: number
}

export interface ChatListQuery {
  /** matches the chat's name or JID, or the name or push name of its contact */
  q?: string
  cursor?: string
  limit: number
}

export interface ChatPage {
  items: ChatRecord[]
  nextCursor: string | null
  /** matches across all pages */
  total: number
}

const toRecord = (row: Selectable<ChatsTable>): ChatRecord => ({
  sessionId: row.session_id,
  jid: row.jid,
  lid: row.lid,
  name: row.name,
  lastMessageAt: row.last_message_at,
  lastMessageId: row.last_message_id,
  unreadCount: row.unread_count,
  archived: row.archived === 1,
  pinned: row.pinned === 1,
  mutedUntil: row.muted_until,
  updatedAt: row.updated_at,
})

const COLUMNS: { [K in keyof Required<ChatPatch>]: keyof ChatsTable } = {
  lid: 'lid',
  name: 'name',
  lastMessageAt: 'last_message_at',
  lastMessageId: 'last_message_id',
  unreadCount: 'unread_count',
  archived: 'archived',
  pinned: 'pinned',
  mutedUntil: 'muted_until',
  updatedAt: 'updated_at',
}

function toColumns(patch: ChatPatch): Updateable<ChatsTable> {
  const values: Record<string, unknown> = {}
  for (const field of Object.keys(COLUMNS) as (keyof ChatPatch)[]) {
    const value = patch[field]
    if (value === undefined) continue
    values[COLUMNS[field]] = typeof value === 'boolean' ? Number(value) : value
  }
  return values as Updateable<ChatsTable>
}

/** Chats without messages sort last: their activity key is -1, below any real time. */
const ACTIVITY = sql<number>`coalesce(${sql.ref('chats.last_message_at')}, -1)`
const ROWS_PER_UPSERT = 250

/**
 * A last-message column's incoming value, unless the incoming message is older than the one
 * shown: history and late deliveries arrive out of order. Not older, rather than newer, so
 * that of two messages in one second the later arrival shows.
 */
const unlessOlder = <C extends 'last_message_at' | 'last_message_id'>(column: C) =>
  sql<ChatsTable[C]>`case when ${sql.ref('chats.last_message_at')} is null
    or ${sql.ref('excluded.last_message_at')} >= ${sql.ref('chats.last_message_at')}
    then ${sql.ref(`excluded.${column}`)} else ${sql.ref(`chats.${column}`)} end`

/** Chats per session, kept current from live messages and history syncs. */
export class ChatsRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  /**
   * Records a message in its chat in one statement: creates the chat, or moves its last
   * message forward unless the message is older than the one shown. Unread counts up
   * whatever the message's age.
   */
  async upsertActivity(sessionId: string, activity: ChatActivity, trx: Executor = this.db): Promise<void> {
    await trx
      .insertInto('chats')
      .values({
        session_id: sessionId,
        jid: activity.jid,
        lid: activity.lid ?? null,
        name: activity.name ?? null,
        last_message_at: activity.at,
        last_message_id: activity.messageId,
        unread_count: activity.addUnread,
        archived: 0,
        pinned: 0,
        muted_until: null,
        updated_at: Date.now(),
      })
      .onConflict((oc) =>
        oc.columns(['session_id', 'jid']).doUpdateSet((eb) => ({
          last_message_at: unlessOlder('last_message_at'),
          last_message_id: unlessOlder('last_message_id'),
          unread_count: eb('chats.unread_count', '+', eb.ref('excluded.unread_count')),
          lid: eb.fn.coalesce('excluded.lid', 'chats.lid'),
          name: eb.fn.coalesce('excluded.name', 'chats.name'),
          updated_at: eb.ref('excluded.updated_at'),
        })),
      )
      .execute()
  }

  /**
   * History sync: writes the fields each chat gives, leaving the others as they are, except
   * that the last message time never moves back. Rows are batched by which fields they give.
   */
  async upsertMany(sessionId: string, chats: ChatUpsert[], trx: Executor = this.db): Promise<void> {
    // Postgres refuses an upsert that touches one row twice: merge repeats of a chat first.
    const merged = new Map<string, ChatUpsert>()
    for (const chat of chats) {
      merged.set(chat.jid, { ...merged.get(chat.jid), ...definedOnly(chat), jid: chat.jid })
    }
    const batches = new Map<string, Updateable<ChatsTable>[]>()
    const now = Date.now()
    for (const { jid, ...fields } of merged.values()) {
      const row = { session_id: sessionId, jid, ...toColumns({ updatedAt: now, ...fields }) }
      const shape = Object.keys(row).sort().join()
      const batch = batches.get(shape) ?? []
      batches.set(shape, batch)
      batch.push(row)
    }
    for (const rows of batches.values()) {
      const given = Object.keys(rows[0] ?? {}).filter(
        (c) => c !== 'session_id' && c !== 'jid',
      ) as (keyof ChatsTable)[]
      for (const part of chunks(rows, ROWS_PER_UPSERT)) {
        await trx
          .insertInto('chats')
          .values(part as ChatsTable[])
          .onConflict((oc) =>
            oc.columns(['session_id', 'jid']).doUpdateSet((eb) => {
              const set: Record<string, unknown> = {}
              for (const column of given) set[column] = eb.ref(`excluded.${column}`)
              if (given.includes('last_message_at')) {
                set['last_message_at'] = unlessOlder('last_message_at')
                if (given.includes('last_message_id')) set['last_message_id'] = unlessOlder('last_message_id')
              }
              return set as Updateable<ChatsTable>
            }),
          )
          .execute()
      }
    }
  }

  /** Writes the given fields of one chat, creating it if new, and returns it as stored. */
  async upsert(sessionId: string, chat: ChatUpsert, trx: Executor = this.db): Promise<ChatRecord> {
    await this.upsertMany(sessionId, [chat], trx)
    const stored = await this.get(sessionId, chat.jid, trx)
    if (!stored) throw new Error(`chat ${chat.jid} vanished while it was written`)
    return stored
  }

  async setRead(sessionId: string, jid: string, trx: Executor = this.db): Promise<void> {
    await trx
      .updateTable('chats')
      .set({ unread_count: 0, updated_at: Date.now() })
      .where('session_id', '=', sessionId)
      .where('jid', '=', jid)
      .execute()
  }

  /** @throws AppError `not_found` when the session has no such chat */
  async update(
    sessionId: string,
    jid: string,
    patch: ChatPatch,
    trx: Executor = this.db,
  ): Promise<ChatRecord> {
    const row = await trx
      .updateTable('chats')
      .set(toColumns({ updatedAt: Date.now(), ...patch }))
      .where('session_id', '=', sessionId)
      .where('jid', '=', jid)
      .returningAll()
      .executeTakeFirst()
    if (!row) throw notFound('chat')
    return toRecord(row)
  }

  async get(sessionId: string, jid: string, trx: Executor = this.db): Promise<ChatRecord | undefined> {
    const row = await trx
      .selectFrom('chats')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('jid', '=', jid)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  /** Most recent activity first, chats without messages last, then by JID. */
  async list(sessionId: string, query: ChatListQuery, trx: Executor = this.db): Promise<ChatPage> {
    let filtered = trx.selectFrom('chats').where('chats.session_id', '=', sessionId)
    const q = query.q?.trim()
    if (q) {
      filtered = filtered.where((eb) =>
        eb.or([
          containsIgnoringCase('chats.name', q),
          containsIgnoringCase('chats.jid', q),
          // The chat's contact, whether either side is keyed by phone JID or by LID.
          eb.exists(
            eb
              .selectFrom('contacts')
              .select(sql.lit(1).as('one'))
              .whereRef('contacts.session_id', '=', 'chats.session_id')
              .where((c) =>
                c.or([
                  c('contacts.jid', '=', c.ref('chats.jid')),
                  c('contacts.lid', '=', c.ref('chats.jid')),
                  c('contacts.jid', '=', c.ref('chats.lid')),
                  c('contacts.lid', '=', c.ref('chats.lid')),
                ]),
              )
              .where((c) =>
                c.or([
                  containsIgnoringCase('contacts.name', q),
                  containsIgnoringCase('contacts.push_name', q),
                ]),
              ),
          ),
        ]),
      )
    }
    let page = filtered
      .selectAll('chats')
      .orderBy(ACTIVITY, 'desc')
      .orderBy('chats.jid')
      .limit(query.limit + 1)
    if (query.cursor) {
      const [activity, jid] = decodeCursor(query.cursor, ['number', 'string'])
      page = page.where((eb) =>
        eb.or([
          eb(ACTIVITY, '<', activity),
          eb.and([eb(ACTIVITY, '=', activity), eb('chats.jid', '>', jid)]),
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
      nextCursor:
        rows.length > query.limit && last ? encodeCursor([last.lastMessageAt ?? -1, last.jid]) : null,
      total: Number(counted.total),
    }
  }
}

const definedOnly = <T extends object>(value: T): Partial<T> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
