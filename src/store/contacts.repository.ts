import type { Insertable, Kysely, Selectable } from 'kysely'
import { decodeCursor, encodeCursor } from './cursor.ts'
import { containsIgnoringCase } from './dialect-sql.ts'
import { chunks } from './messages.repository.ts'
import type { Executor, Tables } from './schema.ts'
import type { ContactsTable } from './schema-messages.ts'

/** Someone the session knows: from its address book, a history sync, or a message they sent. */
export interface ContactRecord {
  sessionId: string
  /** phone JID, or LID when WhatsApp hid the number */
  jid: string
  lid: string | null
  /** digits only */
  phone: string | null
  /** the name in the phone's address book */
  name: string | null
  /** the name they chose */
  pushName: string | null
  verifiedName: string | null
  isBusiness: boolean
  updatedAt: number
}

/** What one source knows about a contact; unknown (absent or null) fields keep their value. */
export type ContactUpsert = Partial<Omit<ContactRecord, 'sessionId'>> & { jid: string }

export interface ContactSearchQuery {
  /** matches name, push name, verified name, phone, JID or LID */
  q?: string
  cursor?: string
  limit: number
}

export interface ContactPage {
  items: ContactRecord[]
  nextCursor: string | null
  /** matches across all pages */
  total: number
}

const toRecord = (row: Selectable<ContactsTable>): ContactRecord => ({
  sessionId: row.session_id,
  jid: row.jid,
  lid: row.lid,
  phone: row.phone,
  name: row.name,
  pushName: row.push_name,
  verifiedName: row.verified_name,
  isBusiness: row.is_business === 1,
  updatedAt: row.updated_at,
})

/** The columns a later source fills in but never blanks. */
const MERGED = ['lid', 'phone', 'name', 'push_name', 'verified_name'] as const
const SEARCHED = ['name', 'push_name', 'verified_name', 'phone', 'jid', 'lid'] as const
const ROWS_PER_UPSERT = 250

/** Contacts, and the LID ↔ phone number map WhatsApp reveals piece by piece. */
export class ContactsRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  /** Merges what is known: a value once learnt is never overwritten by an unknown one. */
  async upsert(sessionId: string, contact: ContactUpsert, trx: Executor = this.db): Promise<void> {
    await this.upsertMany(sessionId, [contact], trx)
  }

  async upsertMany(sessionId: string, contacts: ContactUpsert[], trx: Executor = this.db): Promise<void> {
    // Postgres refuses an upsert that touches one row twice: merge repeats of a contact first.
    const merged = new Map<string, ContactUpsert>()
    for (const contact of contacts) {
      const known = Object.entries(contact).filter(([, value]) => value !== undefined && value !== null)
      merged.set(contact.jid, { ...merged.get(contact.jid), ...Object.fromEntries(known), jid: contact.jid })
    }
    const now = Date.now()
    const rows = [...merged.values()].map((c) => ({
      session_id: sessionId,
      jid: c.jid,
      lid: c.lid ?? null,
      phone: c.phone ?? null,
      name: c.name ?? null,
      push_name: c.pushName ?? null,
      verified_name: c.verifiedName ?? null,
      is_business: c.isBusiness ? 1 : 0,
      updated_at: c.updatedAt ?? now,
      businessKnown: c.isBusiness !== undefined,
    }))
    // is_business cannot be NULL, so "unknown" is told apart by writing it only when given.
    for (const businessKnown of [true, false]) {
      const batch = rows.filter((row) => row.businessKnown === businessKnown)
      for (const part of chunks(batch, ROWS_PER_UPSERT)) {
        await trx
          .insertInto('contacts')
          .values(part.map(({ businessKnown: _, ...row }) => row as Insertable<ContactsTable>))
          .onConflict((oc) =>
            oc.columns(['session_id', 'jid']).doUpdateSet((eb) => ({
              ...Object.fromEntries(
                MERGED.map((column) => [column, eb.fn.coalesce(`excluded.${column}`, `contacts.${column}`)]),
              ),
              ...(businessKnown ? { is_business: eb.ref('excluded.is_business') } : {}),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute()
      }
    }
  }

  /** By phone JID or LID: an exact JID match first, else a contact that has this LID. */
  async get(sessionId: string, jid: string, trx: Executor = this.db): Promise<ContactRecord | undefined> {
    const rows = await trx
      .selectFrom('contacts')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where((eb) => eb.or([eb('jid', '=', jid), eb('lid', '=', jid)]))
      .orderBy('updated_at', 'desc')
      .execute()
    const row = rows.find((r) => r.jid === jid) ?? rows[0]
    return row && toRecord(row)
  }

  /** The contacts stored under exactly these JIDs (not by LID), in no particular order. */
  async listByJids(sessionId: string, jids: string[], trx: Executor = this.db): Promise<ContactRecord[]> {
    const found: ContactRecord[] = []
    for (const part of chunks([...new Set(jids)], ROWS_PER_UPSERT)) {
      const rows = await trx
        .selectFrom('contacts')
        .selectAll()
        .where('session_id', '=', sessionId)
        .where('jid', 'in', part)
        .execute()
      found.push(...rows.map(toRecord))
    }
    return found
  }

  /** By JID, so pages are stable whatever names change between them. */
  async search(sessionId: string, query: ContactSearchQuery, trx: Executor = this.db): Promise<ContactPage> {
    let filtered = trx.selectFrom('contacts').where('session_id', '=', sessionId)
    const q = query.q?.trim()
    if (q) filtered = filtered.where((eb) => eb.or(SEARCHED.map((column) => containsIgnoringCase(column, q))))
    let page = filtered
      .selectAll()
      .orderBy('jid')
      .limit(query.limit + 1)
    if (query.cursor) {
      const [jid] = decodeCursor(query.cursor, ['string'])
      page = page.where('jid', '>', jid)
    }
    const [rows, counted] = await Promise.all([
      page.execute(),
      filtered.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
    ])
    const items = rows.slice(0, query.limit).map(toRecord)
    const last = items.at(-1)
    return {
      items,
      nextCursor: rows.length > query.limit && last ? encodeCursor([last.jid]) : null,
      total: Number(counted.total),
    }
  }

  /** Records that this LID is this phone JID; a newer mapping of the LID replaces the old. */
  async mapLid(sessionId: string, lid: string, pn: string, trx: Executor = this.db): Promise<void> {
    await trx
      .insertInto('lid_map')
      .values({ session_id: sessionId, lid, pn })
      .onConflict((oc) => oc.columns(['session_id', 'lid']).doUpdateSet({ pn }))
      .execute()
  }

  /** The phone JID behind a LID, when WhatsApp has told us. */
  async pnForLid(sessionId: string, lid: string, trx: Executor = this.db): Promise<string | undefined> {
    const row = await trx
      .selectFrom('lid_map')
      .select('pn')
      .where('session_id', '=', sessionId)
      .where('lid', '=', lid)
      .executeTakeFirst()
    return row?.pn
  }

  /** The LID of a phone JID, when WhatsApp has told us. */
  async lidForPn(sessionId: string, pn: string, trx: Executor = this.db): Promise<string | undefined> {
    const row = await trx
      .selectFrom('lid_map')
      .select('lid')
      .where('session_id', '=', sessionId)
      .where('pn', '=', pn)
      .orderBy('lid')
      .limit(1)
      .executeTakeFirst()
    return row?.lid
  }
}
