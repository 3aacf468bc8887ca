import { AppError, invalidRequest, invalidState, notFound } from '../domain/errors.ts'
import { bareJid, chatKind, normalizeRecipient } from '../domain/jid.ts'
import type { EngineConnection, GroupReport, ParticipantAction } from '../engine/engine.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import type { GroupRecord, GroupsRepository } from '../store/groups.repository.ts'

/**
 * Groups: read from the store (kept current from WhatsApp's group notifications), managed
 * live through the session's connection, and written back to the store after each change.
 */
export class GroupsService {
  private readonly deps: {
    groups: GroupsRepository
    connection: (sessionId: string) => EngineConnection | undefined
    now?: () => number
  }

  constructor(deps: GroupsService['deps']) {
    this.deps = deps
  }

  list(session: SessionRecord, query: { q?: string; cursor?: string; limit: number }) {
    return this.deps.groups.list(session.id, query)
  }

  async get(session: SessionRecord, groupId: string) {
    const jid = groupJid(groupId)
    const group = (await this.deps.groups.get(session.id, jid)) ?? (await this.learn(session, jid))
    if (!group) throw notFound(`group ${groupId}`)
    return group
  }

  /**
   * A group the store does not know yet (joined while the notification was missed, or
   * never synced), asked of WhatsApp and kept — but only while the session is a member:
   * WhatsApp may still describe a group the session has left.
   */
  async learn(session: SessionRecord, jid: string) {
    const connection = this.deps.connection(session.id)
    if (session.status !== 'ready' || !connection) return undefined
    const report = await connection.groups.metadata(jid).catch((error: unknown) => {
      if (error instanceof AppError && error.code === 'not_found') return undefined
      throw error
    })
    if (!report || !isMember(session, report)) return undefined
    return this.remember(session, report)
  }

  async create(session: SessionRecord, subject: string, participants: string[]) {
    const members = participants.map((p, i) => normalizeRecipient(p, `body.participants.${i}`))
    return this.remember(session, await this.live(session).groups.create(subject, members))
  }

  async update(session: SessionRecord, groupId: string, change: { subject?: string; description?: string }) {
    const jid = groupJid(groupId)
    const connection = this.live(session)
    if (change.subject !== undefined) await connection.groups.setSubject(jid, change.subject)
    if (change.description !== undefined) await connection.groups.setDescription(jid, change.description)
    return this.remember(session, await connection.groups.metadata(jid))
  }

  async participants(session: SessionRecord, groupId: string, action: ParticipantAction, people: string[]) {
    const jid = groupJid(groupId)
    const connection = this.live(session)
    const members = people.map((p, i) => normalizeRecipient(p, `body.participants.${i}`))
    const results = await connection.groups.updateParticipants(jid, members, action)
    const group = await this.remember(session, await connection.groups.metadata(jid))
    return { group, results }
  }

  async leave(session: SessionRecord, groupId: string): Promise<void> {
    const jid = groupJid(groupId)
    await this.live(session).groups.leave(jid)
    await this.deps.groups.delete(session.id, jid)
  }

  async invite(
    session: SessionRecord,
    groupId: string,
    revoke: boolean,
  ): Promise<{ code: string; link: string }> {
    const jid = groupJid(groupId)
    const connection = this.live(session)
    const code = revoke ? await connection.groups.revokeInvite(jid) : await connection.groups.inviteCode(jid)
    return { code, link: `https://chat.whatsapp.com/${code}` }
  }

  /** The name a member used in a group message (WhatsApp's in-group name), kept on the member. */
  async rememberName(
    session: SessionRecord,
    jid: string,
    member: { jid: string | null; lid: string | null },
    name: string,
  ) {
    const group = (await this.deps.groups.get(session.id, jid)) ?? (await this.learn(session, jid))
    if (!group) return
    const index = group.participants.findIndex(
      (p) => (member.jid && p.jid === member.jid) || (member.lid && p.lid === member.lid),
    )
    const participant = index >= 0 ? group.participants[index] : undefined
    if (!participant || participant.name === name) return
    group.participants[index] = { ...participant, name }
    await this.deps.groups.upsert({ ...group, updatedAt: this.deps.now?.() ?? Date.now() })
  }

  /** Fetches and stores every group the session is in (after a connection opens). */
  async syncAll(session: SessionRecord, connection: EngineConnection): Promise<number> {
    const all = await connection.groups.participating()
    for (const report of all) await this.remember(session, report)
    return all.length
  }

  /** Stores what WhatsApp says a group is now; the in-group names we learnt are kept. */
  async remember(session: SessionRecord, report: GroupReport) {
    const previous = await this.deps.groups.get(session.id, report.jid)
    const record = groupRecord(session.id, report, previous, this.deps.now?.() ?? Date.now())
    await this.deps.groups.upsert(record)
    return record
  }

  private live(session: SessionRecord): EngineConnection {
    const connection = this.deps.connection(session.id)
    if (session.status !== 'ready' || !connection)
      throw invalidState(`the session is ${session.status}, not ready`)
    return connection
  }
}

/** Whether the session's own number (or LID) is among the group's members. */
function isMember(session: SessionRecord, report: GroupReport): boolean {
  const lid = session.lid ? bareJid(session.lid) : null
  return report.participants.some(
    (p) => (session.phone !== null && p.phone === session.phone) || (lid !== null && p.lid === lid),
  )
}

function groupJid(groupId: string): string {
  const jid = groupId.includes('@') ? groupId : `${groupId}@g.us`
  if (chatKind(jid) !== 'group') {
    throw invalidRequest('params.groupId: not a group JID', [
      { path: 'params.groupId', message: 'expected …@g.us' },
    ])
  }
  return normalizeRecipient(jid, 'params.groupId')
}

/** A group as WhatsApp describes it now, keeping the in-group names learnt before. */
export function groupRecord(
  sessionId: string,
  report: GroupReport,
  previous: GroupRecord | undefined,
  now: number,
): GroupRecord {
  const names = new Map((previous?.participants ?? []).map((p) => [p.jid, p.name]))
  return {
    sessionId,
    jid: report.jid,
    subject: report.subject,
    description: report.description ?? null,
    owner: report.owner ?? null,
    createdAt: report.createdAt ?? null,
    participants: report.participants.map((p) => ({ ...p, name: names.get(p.jid) ?? null })),
    announce: report.announce,
    restrict: report.restrict,
    updatedAt: now,
  }
}
