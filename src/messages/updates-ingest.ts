import type { Logger } from 'pino'
import { bareJid, chatKind } from '../domain/jid.ts'
import type {
  CallReport,
  ChatReport,
  EngineConnection,
  GroupChangeReport,
  GroupParticipantsReport,
  GroupReport,
  PresenceReport,
} from '../engine/engine.ts'
import type { DomainEvent, DomainEventMap } from '../events/catalogue.ts'
import type { EventRecorder } from '../events/event-recorder.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import { eventSession } from '../sessions/session-store.ts'
import type { ChatPatch, ChatsRepository } from '../store/chats.repository.ts'
import type { ContactsRepository } from '../store/contacts.repository.ts'
import type { Database } from '../store/db.ts'
import type { GroupParticipant, GroupRecord, GroupsRepository } from '../store/groups.repository.ts'
import type { Executor } from '../store/schema.ts'
import { ContactBook, type Person } from './contact-book.ts'
import { groupRecord } from './groups.service.ts'
import { ignoredChat } from './ingest.service.ts'

const GROUP_INFO = ['subject', 'description', 'announce', 'restrict'] as const

type Changes<T extends 'chat.update' | 'group.update' | 'group.participants'> = DomainEventMap[T][]

/**
 * What WhatsApp says changed besides messages — presence, chat state the phone synced,
 * group info and members, calls — as events. A change to stored state (chats, groups) is
 * written with its event in one transaction, and only when the stored state differs;
 * presence and calls are events only. The session's `ignore` settings apply as for messages.
 */
export class UpdatesIngest {
  private readonly deps: {
    database: Database
    chats: ChatsRepository
    contacts: ContactsRepository
    groups: GroupsRepository
    recorder: EventRecorder
    logger: Logger
    now?: () => number
    /** the session as it is now (config and identity may change while connected) */
    session: (id: string) => Promise<SessionRecord | undefined>
  }

  private readonly contactBook: ContactBook

  constructor(deps: UpdatesIngest['deps']) {
    this.deps = deps
    this.contactBook = new ContactBook(deps.contacts)
  }

  /** Subscribes to one connection's events; the connection lives as long as its socket. */
  attach(sessionId: string, connection: EngineConnection): void {
    // One chain per connection, as for messages: changes apply in the order they came.
    let chain = Promise.resolve()
    const queue = (what: string, work: (session: SessionRecord) => Promise<void>) => {
      chain = chain
        .then(async () => {
          const session = await this.deps.session(sessionId)
          if (session) await work(session)
        })
        .catch((err) => this.deps.logger.error({ err, sessionId }, `ingesting ${what} failed`))
    }
    connection.events.on('presence', (report) => queue('presence', (s) => this.presence(s, report)))
    connection.events.on('chats', (reports) => queue('chats', (s) => this.chats(s, reports)))
    connection.events.on('group-update', (reports) =>
      queue('groups', (s) => this.groupInfo(s, connection, reports)),
    )
    connection.events.on('group-participants', (report) =>
      queue('group members', (s) => this.groupMembers(s, connection, report)),
    )
    connection.events.on('call', (calls) => queue('calls', (s) => this.calls(s, calls)))
  }

  /** Presence is ephemeral: an event for webhooks and the stream, nothing stored. */
  private async presence(session: SessionRecord, report: PresenceReport): Promise<void> {
    if (ignoredChat(session.config, report.chatJid)) return
    const participant = await this.contactBook.person(session.id, report.participant)
    if (isSelf(session, participant)) return
    const chatJid =
      chatKind(report.chatJid) === 'group'
        ? report.chatJid
        : (await this.contactBook.person(session.id, report.chatJid)).jid
    await this.deps.recorder.record(eventSession(session), [
      {
        type: 'presence.update',
        data: { chatJid, participant, presence: report.presence, lastSeen: report.lastSeen ?? null },
      },
    ])
  }

  /** Chat state the phone synced; only with a store, since the change is to the stored chat. */
  private async chats(session: SessionRecord, reports: ChatReport[]): Promise<void> {
    if (!session.config.store.enabled) return
    await this.inTransaction(session, 'chat.update', async (trx) => {
      const changes: Changes<'chat.update'> = []
      for (const report of reports) {
        // Chats are kept under the phone JID when the LID map knows it.
        const who =
          chatKind(report.jid) === 'lid'
            ? await this.contactBook.person(session.id, report.jid, undefined, trx)
            : null
        const jid = who?.jid ?? bareJid(report.jid)
        if (ignoredChat(session.config, jid)) continue
        const before = await this.deps.chats.get(session.id, jid, trx)
        const patch = chatPatch(report, before)
        const changed = Object.keys(patch) as Changes<'chat.update'>[number]['changed']
        if (changed.length === 0) continue
        if (who?.lid && !before?.lid) patch.lid = who.lid
        const after = await this.deps.chats.upsert(session.id, { jid, ...patch }, trx)
        changes.push({
          chatJid: after.jid,
          chatLid: after.lid,
          changed,
          name: after.name,
          archived: after.archived,
          pinned: after.pinned,
          mutedUntil: after.mutedUntil,
          unreadCount: after.unreadCount,
        })
      }
      return changes
    })
  }

  /**
   * A known group's info or settings, as WhatsApp describes the group now: Baileys keeps
   * only the first of several changes to one group that arrive together, so the change
   * names the group and the group is read whole (falling back to what the change says).
   * A group never stored is learnt when first asked for, not here.
   */
  private async groupInfo(
    session: SessionRecord,
    connection: EngineConnection,
    reports: GroupChangeReport[],
  ): Promise<void> {
    if (session.config.ignore.groups) return
    const current = new Map<string, GroupReport>()
    for (const { jid } of reports) {
      if (current.has(jid) || !(await this.deps.groups.get(session.id, jid))) continue
      const snapshot = await this.readGroup(session, connection, jid)
      if (snapshot) current.set(jid, snapshot)
    }
    await this.inTransaction(session, 'group.update', async (trx) => {
      const changes: Changes<'group.update'> = []
      for (const report of reports) {
        const group = await this.deps.groups.get(session.id, report.jid, trx)
        if (!group) continue
        const now = current.get(report.jid)
        const next: GroupRecord = {
          ...group,
          ...(now
            ? {
                subject: now.subject,
                description: now.description ?? null,
                announce: now.announce,
                restrict: now.restrict,
              }
            : definedOnly({
                subject: report.subject,
                description: report.description,
                announce: report.announce,
                restrict: report.restrict,
              })),
        }
        const changed = GROUP_INFO.filter((field) => next[field] !== group[field])
        if (changed.length === 0) continue
        await this.deps.groups.upsert({ ...next, updatedAt: this.now() }, trx)
        // The group's chat carries its name too.
        const chat = changed.includes('subject') && (await this.deps.chats.get(session.id, report.jid, trx))
        if (chat && chat.name !== next.subject) {
          await this.deps.chats.update(session.id, report.jid, { name: next.subject }, trx)
        }
        changes.push({
          groupJid: next.jid,
          changed,
          subject: next.subject,
          description: next.description,
          announce: next.announce,
          restrict: next.restrict,
          author: await this.author(session, report, group, trx),
        })
      }
      return changes
    })
  }

  private readGroup(session: SessionRecord, connection: EngineConnection, jid: string) {
    return connection.groups.metadata(jid).catch((err: unknown) => {
      this.deps.logger.warn({ err, sessionId: session.id }, 'reading a changed group failed')
      return undefined
    })
  }

  /**
   * Members added, removed, promoted, demoted: applied to the stored group. A group the
   * store does not know (we were just added) and a change of numbers are read whole from
   * WhatsApp; a group the session was removed from is forgotten, as when it leaves.
   */
  private async groupMembers(
    session: SessionRecord,
    connection: EngineConnection,
    report: GroupParticipantsReport,
  ): Promise<void> {
    if (session.config.ignore.groups) return
    const known = await this.deps.groups.get(session.id, report.jid)
    const people: Person[] = []
    for (const p of report.participants) people.push(await this.member(session, known, p.jid, p.alt))
    const removedSelf = report.action === 'remove' && people.some((p) => isSelf(session, p))
    const snapshot =
      !removedSelf && (!known || report.action === 'modify')
        ? await this.readGroup(session, connection, report.jid)
        : undefined
    await this.inTransaction(session, 'group.participants', async (trx) => {
      const stored = await this.deps.groups.get(session.id, report.jid, trx)
      if (removedSelf) await this.deps.groups.delete(session.id, report.jid, trx)
      else if (snapshot)
        await this.deps.groups.upsert(groupRecord(session.id, snapshot, stored, this.now()), trx)
      else if (stored) {
        const participants = applyMembers(stored.participants, report.action, people)
        await this.deps.groups.upsert({ ...stored, participants, updatedAt: this.now() }, trx)
      }
      return [
        {
          groupJid: report.jid,
          action: report.action,
          participants: people,
          author: await this.author(session, report, stored ?? known, trx),
        },
      ]
    })
  }

  /**
   * A call is recorded once, when it rings (the offer): that is when an integration can
   * act (reply, log a missed call later from its own clock). Its ringing, timeout, reject,
   * accept and end are WhatsApp's call signalling, not recorded.
   */
  private async calls(session: SessionRecord, calls: CallReport[]): Promise<void> {
    const offers = calls.filter(
      (call) => call.status === 'offer' && !ignoredChat(session.config, call.groupJid ?? call.chatJid),
    )
    for (const call of offers) {
      const from = await this.contactBook.person(session.id, call.from, call.callerPn)
      await this.deps.recorder.record(eventSession(session), [
        {
          type: 'call.received',
          data: {
            callId: call.id,
            status: 'offer',
            from,
            chatJid: call.groupJid ?? from.jid,
            isVideo: call.isVideo,
            isGroup: call.isGroup,
            groupJid: call.groupJid ?? null,
            offline: call.offline,
            at: call.at,
          },
        },
      ])
    }
  }

  private async author(
    session: SessionRecord,
    report: { author?: string; authorAlt?: string },
    group: GroupRecord | undefined,
    trx: Executor,
  ): Promise<Person | null> {
    return report.author ? this.member(session, group, report.author, report.authorAlt, trx) : null
  }

  /** A group member: the LID map, else the group's own member list, gives the other address. */
  private async member(
    session: SessionRecord,
    group: GroupRecord | undefined,
    address: string,
    alternate?: string,
    trx?: Executor,
  ): Promise<Person> {
    const person = await this.contactBook.person(session.id, address, alternate, trx)
    if (person.lid && person.phone) return person
    const known = group?.participants.find((p) => samePerson(p, person))
    if (!known) return person
    const lid = person.lid ?? known.lid
    const phone = person.phone ?? known.phone
    return { jid: phone ? `${phone}@s.whatsapp.net` : (lid ?? person.jid), lid, phone }
  }

  /** Runs `write` in a transaction with the events it returns stored; publishes after commit. */
  private async inTransaction<T extends 'chat.update' | 'group.update' | 'group.participants'>(
    session: SessionRecord,
    type: T,
    write: (trx: Executor) => Promise<Changes<T>>,
  ): Promise<void> {
    const events: DomainEvent[] = await this.deps.database.db.transaction().execute(async (trx) => {
      const changes = await write(trx)
      return this.deps.recorder.store(
        eventSession(session),
        changes.map((data) => ({ type, data })),
        trx,
      )
    })
    this.deps.recorder.publish(events)
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now()
  }
}

/** The fields of a chat report that differ from what is stored; a new chat starts unarchived, unread 0. */
function chatPatch(
  report: ChatReport,
  before:
    | {
        name: string | null
        archived: boolean
        pinned: boolean
        mutedUntil: number | null
        unreadCount: number
      }
    | undefined,
): ChatPatch {
  const patch: ChatPatch = {}
  if (report.name !== undefined && report.name !== (before?.name ?? null)) patch.name = report.name
  if (report.archived !== undefined && report.archived !== (before?.archived ?? false)) {
    patch.archived = report.archived
  }
  if (report.pinned !== undefined && report.pinned !== (before?.pinned ?? false)) patch.pinned = report.pinned
  if (report.mutedUntil !== undefined && report.mutedUntil !== (before?.mutedUntil ?? null)) {
    patch.mutedUntil = report.mutedUntil
  }
  if (report.read !== undefined) {
    // WhatsApp's "mark as unread" has no count: it shows as one unread message.
    const unread = before?.unreadCount ?? 0
    const next = report.read ? 0 : Math.max(unread, 1)
    if (next !== unread) patch.unreadCount = next
  }
  return patch
}

const definedOnly = <T extends object>(value: T): Partial<T> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>

const samePerson = (p: GroupParticipant, who: Person): boolean =>
  p.jid === who.jid ||
  (who.lid !== null && p.lid === who.lid) ||
  (who.phone !== null && p.phone === who.phone)

function applyMembers(
  members: GroupParticipant[],
  action: GroupParticipantsReport['action'],
  people: Person[],
): GroupParticipant[] {
  const touched = (p: GroupParticipant) => people.some((who) => samePerson(p, who))
  switch (action) {
    case 'add': {
      const added = people.filter((who) => !members.some((p) => samePerson(p, who)))
      return [...members, ...added.map((who) => ({ ...who, role: 'member' as const, name: null }))]
    }
    case 'remove':
      return members.filter((p) => !touched(p))
    case 'promote':
      return members.map((p) => (touched(p) && p.role === 'member' ? { ...p, role: 'admin' as const } : p))
    case 'demote':
      return members.map((p) => (touched(p) && p.role === 'admin' ? { ...p, role: 'member' as const } : p))
    default:
      return members
  }
}

/** Whether `person` is the session's own account. */
function isSelf(session: SessionRecord, person: Person): boolean {
  const lid = session.lid ? bareJid(session.lid) : null
  return (session.phone !== null && person.phone === session.phone) || (lid !== null && person.lid === lid)
}
