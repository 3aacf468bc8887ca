import type { Kysely, Selectable } from 'kysely'
import { bareJid, parseJid, phoneOf } from '../domain/jid.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import { containsIgnoringCase } from './dialect-sql.ts'
import type { Executor, Tables } from './schema.ts'
import type { WaGroupsTable } from './schema-messages.ts'

export interface GroupParticipant {
  /** as the group addresses the member: phone JID, or LID in LID-addressed groups */
  jid: string
  lid: string | null
  /** digits only */
  phone: string | null
  role: 'member' | 'admin' | 'superadmin'
  /** what the session calls them in this group, when known */
  name: string | null
}

/** A group the session belongs to, as last seen. */
export interface GroupRecord {
  sessionId: string
  jid: string
  subject: string
  description: string | null
  owner: string | null
  /** when WhatsApp says the group was created (epoch ms) */
  createdAt: number | null
  participants: GroupParticipant[]
  /** only admins send */
  announce: boolean
  /** only admins edit the group's info */
  restrict: boolean
  updatedAt: number
}

export interface GroupListQuery {
  /** matches subject or JID */
  q?: string
  cursor?: string
  limit: number
}

export interface GroupPage {
  items: GroupRecord[]
  nextCursor: string | null
  /** matches across all pages */
  total: number
}

const toRecord = (row: Selectable<WaGroupsTable>): GroupRecord => ({
  sessionId: row.session_id,
  jid: row.jid,
  subject: row.subject,
  description: row.description,
  owner: row.owner,
  createdAt: row.created_at,
  participants: JSON.parse(row.participants) as GroupParticipant[],
  announce: row.announce === 1,
  restrict: row.restrict === 1,
  updatedAt: row.updated_at,
})

const toRow = (record: GroupRecord): WaGroupsTable => ({
  session_id: record.sessionId,
  jid: record.jid,
  subject: record.subject,
  description: record.description,
  owner: record.owner,
  created_at: record.createdAt,
  participants: JSON.stringify(record.participants),
  announce: record.announce ? 1 : 0,
  restrict: record.restrict ? 1 : 0,
  updated_at: record.updatedAt,
})

/** Group metadata per session (table `wa_groups`); members are a JSON list in the row. */
export class GroupsRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  /** Replaces everything known about the group with this snapshot. */
  async upsert(record: GroupRecord, trx: Executor = this.db): Promise<void> {
    const { session_id: _, jid: __, ...rest } = toRow(record)
    await trx
      .insertInto('wa_groups')
      .values(toRow(record))
      .onConflict((oc) => oc.columns(['session_id', 'jid']).doUpdateSet(rest))
      .execute()
  }

  async get(sessionId: string, jid: string, trx: Executor = this.db): Promise<GroupRecord | undefined> {
    const row = await trx
      .selectFrom('wa_groups')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('jid', '=', jid)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  /** By JID, so pages are stable whatever subjects change between them. */
  async list(sessionId: string, query: GroupListQuery, trx: Executor = this.db): Promise<GroupPage> {
    let filtered = trx.selectFrom('wa_groups').where('session_id', '=', sessionId)
    const q = query.q?.trim()
    if (q) {
      filtered = filtered.where((eb) =>
        eb.or([containsIgnoringCase('subject', q), containsIgnoringCase('jid', q)]),
      )
    }
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

  /**
   * Groups with this member, named by phone JID or LID. Participants are JSON text, which
   * neither dialect indexes portably: SQL narrows to rows whose JSON mentions the address's
   * user part (a substring of its JID, LID and phone alike), and code checks each member.
   */
  async listContaining(
    sessionId: string,
    memberJid: string,
    trx: Executor = this.db,
  ): Promise<GroupRecord[]> {
    const member = bareJid(memberJid)
    const phone = phoneOf(member) ?? null
    const rows = await trx
      .selectFrom('wa_groups')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where(containsIgnoringCase('participants', parseJid(member)?.user ?? member))
      .orderBy('jid')
      .execute()
    return rows
      .map(toRecord)
      .filter((group) =>
        group.participants.some(
          (p) => bareJid(p.jid) === member || p.lid === member || (phone !== null && p.phone === phone),
        ),
      )
  }

  async delete(sessionId: string, jid: string, trx: Executor = this.db): Promise<void> {
    await trx.deleteFrom('wa_groups').where('session_id', '=', sessionId).where('jid', '=', jid).execute()
  }
}
