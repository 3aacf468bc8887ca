import { proto } from '@whiskeysockets/baileys'
import type { Logger } from 'pino'
import type { IdGenerator } from '../domain/ids.ts'
import { chatKind, phoneOf, STATUS_JID } from '../domain/jid.ts'
import type { SessionConfig } from '../domain/session-config.ts'
import type { KeyWriteSettler } from '../engine/auth-state.ts'
import type {
  ContactReport,
  EngineConnection,
  EngineMessage,
  HistoryBatch,
  StatusReport,
} from '../engine/engine.ts'
import type { DomainEventMap, DomainEventType } from '../events/catalogue.ts'
import type { EventRecorder } from '../events/event-recorder.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import { eventSession } from '../sessions/session-store.ts'
import type { ChatActivity, ChatsRepository } from '../store/chats.repository.ts'
import type { ContactsRepository } from '../store/contacts.repository.ts'
import type { Database } from '../store/db.ts'
import type { MessageRecord, MessagesRepository } from '../store/messages.repository.ts'
import type { Executor } from '../store/schema.ts'
import { ArrivalOrder } from './arrival-order.ts'
import { ContactBook, type ContactUpdate } from './contact-book.ts'
import type { GroupsService } from './groups.service.ts'
import type { MediaDownloader } from './media-downloader.ts'
import type { NormalizedMessage } from './message.types.ts'
import { normalizeMessage } from './normalize.ts'
import { decryptVote } from './poll-votes.ts'

/** The event a received (or own-device) message becomes, by type. */
const EVENT_BY_TYPE: Partial<Record<NormalizedMessage['type'], keyof DomainEventMap>> = {
  reaction: 'message.reaction',
  edit: 'message.edited',
  delete: 'message.deleted',
  poll_vote: 'poll.vote',
}

/** The most messages stored in one transaction. */
const LIVE_BATCH = 100

/** Whether the session's `ignore` settings drop this chat at the source. */
export function ignoredChat(config: SessionConfig, chatJid: string): boolean {
  const kind = chatJid === STATUS_JID ? 'status' : chatKind(chatJid)
  const { ignore } = config
  return (
    (kind === 'status' && ignore.status) ||
    (kind === 'group' && ignore.groups) ||
    (kind === 'newsletter' && ignore.channels) ||
    (kind === 'broadcast' && ignore.broadcast)
  )
}

export const encodeRaw = (message: proto.IMessage | null | undefined): string | null =>
  message ? Buffer.from(proto.Message.encode(message).finish()).toString('base64') : null

/**
 * Everything a session receives, from live messages to history sync: normalized, filtered
 * by the session's ignore settings, deduplicated by WhatsApp id, stored (message, chat,
 * contact, LID map) before its event is published, media fetched in the background.
 */
export class MessageIngest {
  private readonly deps: {
    database: Database
    messages: MessagesRepository
    chats: ChatsRepository
    contacts: ContactsRepository
    recorder: EventRecorder
    media: MediaDownloader
    groups: GroupsService
    newId: IdGenerator
    logger: Logger
    now?: () => number
    /** the session as it is now (config and identity may change while connected) */
    session: (id: string) => Promise<SessionRecord | undefined>
  }

  private readonly order = new ArrivalOrder()
  /** the connections whose chains may still hold work */
  private readonly attached = new Set<{ drain(): Promise<void> }>()
  private readonly contactBook: ContactBook

  constructor(deps: MessageIngest['deps']) {
    this.deps = deps
    this.contactBook = new ContactBook(deps.contacts)
  }

  /** Resolves once everything the connections handed over so far is stored (at shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.attached].map((connection) => connection.drain()))
  }

  /** Subscribes to one connection's events; the connection lives as long as its socket. */
  attach(sessionId: string, connection: EngineConnection): void {
    const guard = (what: string, work: () => Promise<void>) =>
      work().catch((err) => this.deps.logger.error({ err, sessionId }, `ingesting ${what} failed`))
    // One chain per connection: what a session receives is stored in the order it came.
    let chain = Promise.resolve()
    const enqueue = (what: string, work: () => Promise<void>) => {
      chain = chain.then(() => guard(what, work))
    }
    // Messages are stored in groups, one transaction each (group commit): Baileys hands them
    // over one upsert at a time, and those that come in the same turn of the event loop —
    // a burst, an offline backlog — wait for its end and are stored together, up to
    // LIVE_BATCH at a time. A message costs its transaction's share: most index pages are
    // written once per commit, not once per message.
    const waiting: { kind: 'notify' | 'append'; message: EngineMessage }[] = []
    let gathering: NodeJS.Immediate | undefined
    const storeWaiting = () => {
      clearImmediate(gathering)
      gathering = undefined
      while (waiting.length > 0) {
        const group = waiting.splice(0, LIVE_BATCH)
        enqueue('messages', () => this.ingestLive(sessionId, connection, group))
      }
    }
    const queue = (what: string, work: () => Promise<void>) => {
      // Whatever came before this (a status report after its message) is stored before it.
      storeWaiting()
      enqueue(what, work)
    }
    connection.events.on('messages', ({ kind, messages }) => {
      for (const message of messages) waiting.push({ kind, message })
      if (waiting.length >= LIVE_BATCH) storeWaiting()
      else gathering ??= setImmediate(storeWaiting)
    })
    const attached = {
      drain: () => {
        storeWaiting()
        return chain
      },
    }
    this.attached.add(attached)
    connection.events.on('close', () => {
      // What the socket handed over before it closed is still stored; then it is let go.
      void attached.drain().then(() => this.attached.delete(attached))
    })
    connection.events.on('history', (batch) => queue('history', () => this.ingestHistory(sessionId, batch)))
    connection.events.on('message-status', (reports) =>
      queue('statuses', () => this.applyStatuses(sessionId, reports)),
    )
    connection.events.on('contacts', (contacts) =>
      queue('contacts', () => this.contactsChanged(sessionId, contacts)),
    )
    connection.events.on('open', () =>
      queue('groups', async () => {
        const session = await this.deps.session(sessionId)
        if (session && !session.config.ignore.groups) await this.deps.groups.syncAll(session, connection)
      }),
    )
    connection.events.on('groups', ({ jids }) =>
      queue('groups', async () => {
        const session = await this.deps.session(sessionId)
        if (!session || session.config.ignore.groups) return
        for (const jid of jids)
          await this.deps.groups.remember(session, await connection.groups.metadata(jid))
      }),
    )
    connection.events.on('lid-mapping', (pairs) =>
      queue('lid mappings', () => this.lidsMapped(sessionId, pairs)),
    )
  }

  private async ingestLive(
    sessionId: string,
    connection: EngineConnection,
    arrivals: { kind: 'notify' | 'append'; message: EngineMessage }[],
  ): Promise<void> {
    const session = await this.deps.session(sessionId)
    if (!session || arrivals.length === 0) return
    const now = this.now()
    const batch: {
      kind: 'notify' | 'append'
      message: EngineMessage
      normalized: NormalizedMessage
      record: MessageRecord
    }[] = []
    for (const { kind, message } of arrivals) {
      const decoded = normalizeMessage(message, session.jid)
      if (!decoded || ignoredChat(session.config, decoded.chatJid)) continue
      // Our own sends are already stored by the outbound queue; only other devices' are new.
      if (decoded.fromMe && (await this.deps.messages.getByWaId(sessionId, decoded.waId))) continue
      const normalized: NormalizedMessage = {
        ...decoded,
        timestamp: this.order.stamp(sessionId, decoded.chatJid, decoded.timestamp),
        details:
          decoded.type === 'poll_vote' ? await this.voteDetails(session, message, decoded) : decoded.details,
      }
      // Before the message is stored, so that whoever reads it finds its group and the name.
      if (chatKind(normalized.chatJid) === 'group' && !normalized.fromMe) {
        await this.rememberGroupName(session, normalized)
      }
      const record: MessageRecord = {
        ...normalized,
        id: this.deps.newId('message'),
        sessionId,
        status: normalized.fromMe ? 'sent' : null,
        failureReason: null,
        raw: encodeRaw(message.message),
        sendRequest: null,
        sendAfter: null,
        createdAt: now,
        updatedAt: now,
      }
      batch.push({ kind, message, normalized, record })
    }
    if (batch.length === 0) return
    let settleKeys: KeyWriteSettler | undefined
    const writing = this.deps.database.db.transaction().execute(async (trx) => {
      // The Signal session these messages' decryption advanced, in the same commit.
      settleKeys = await connection.writeStagedKeys(trx)
      const items: { type: DomainEventType; data: DomainEventMap[DomainEventType] }[] = []
      const stored: typeof batch = []
      // One statement for the group; a message seen before (an offline replay, a retry) is
      // neither stored nor announced again.
      const fresh = session.config.store.enabled
        ? await this.deps.messages.insertNew(
            batch.map((entry) => entry.record),
            trx,
          )
        : undefined
      const chats = new Map<string, ChatActivity>()
      /** each sender's details as last remembered in this group: the same again changes nothing */
      const seen = new Map<string, string>()
      for (const entry of batch) {
        const { kind, normalized, record } = entry
        let people: ContactUpdate[] = []
        if (fresh) {
          if (!fresh.has(record.id)) continue
          people = await this.rememberPeople(sessionId, normalized, seen, trx)
          // Each chat's activity folded over the group, then written once.
          const chat = chats.get(normalized.chatJid)
          // The later message is the chat's last (a tie: the later arrival), as one upsert each would leave it.
          const latest = !chat || normalized.timestamp >= chat.at
          const lid = normalized.chatLid ?? chat?.lid
          chats.set(normalized.chatJid, {
            jid: normalized.chatJid,
            ...(lid ? { lid } : {}),
            messageId: latest ? record.id : chat.messageId,
            at: latest ? normalized.timestamp : chat.at,
            addUnread: (chat?.addUnread ?? 0) + (!normalized.fromMe && kind === 'notify' ? 1 : 0),
          })
        }
        stored.push(entry)
        const type =
          EVENT_BY_TYPE[normalized.type] ?? (normalized.fromMe ? 'message.sent' : 'message.received')
        items.push({ type, data: { ...normalized, id: record.id, status: record.status } })
        for (const data of people) items.push({ type: 'contact.update', data })
      }
      for (const activity of chats.values()) await this.deps.chats.upsertActivity(sessionId, activity, trx)
      return { events: await this.deps.recorder.store(eventSession(session), items, trx), stored }
    })
    let written: Awaited<typeof writing>
    try {
      written = await writing
    } catch (error) {
      settleKeys?.(false)
      throw error
    }
    settleKeys?.(true)
    const { events, stored } = written
    this.deps.recorder.publish(events)
    if (!session.config.store.enabled) return
    for (const { message, normalized, record } of stored) {
      if (!normalized.media) continue
      this.deps.media.enqueue({
        sessionId,
        messageId: record.id,
        message,
        connection,
        descriptor: normalized.media,
      })
    }
  }

  /** History arrives in large batches: stored in bulk, announced by one event, never per message. */
  private async ingestHistory(sessionId: string, batch: HistoryBatch): Promise<void> {
    const session = await this.deps.session(sessionId)
    if (!session) return
    const now = this.now()
    const records: MessageRecord[] = []
    for (const message of batch.messages) {
      const normalized = normalizeMessage(message, session.jid)
      if (!normalized || ignoredChat(session.config, normalized.chatJid)) continue
      records.push({
        ...normalized,
        id: this.deps.newId('message'),
        sessionId,
        status: normalized.fromMe ? 'sent' : null,
        failureReason: null,
        raw: encodeRaw(message.message),
        sendRequest: null,
        sendAfter: null,
        createdAt: now,
        updatedAt: now,
      })
    }
    const chats = batch.chats.filter((chat) => !ignoredChat(session.config, chat.jid))
    const events = await this.deps.database.db.transaction().execute(async (trx) => {
      let stored = 0
      if (session.config.store.enabled) {
        stored = await this.deps.messages.insertMany(records, trx)
        await this.deps.chats.upsertMany(
          sessionId,
          chats.map((chat) => ({
            jid: chat.jid,
            ...(chat.name ? { name: chat.name } : {}),
            ...(chat.unreadCount !== undefined ? { unreadCount: chat.unreadCount } : {}),
            ...(chat.lastMessageAt ? { lastMessageAt: chat.lastMessageAt } : {}),
            ...(chat.archived ? { archived: true } : {}),
            ...(chat.pinned ? { pinned: true } : {}),
          })),
          trx,
        )
        for (const { lid, pn } of batch.lidMappings) await this.deps.contacts.mapLid(sessionId, lid, pn, trx)
        // History announces itself as one batch: its contact changes are not events.
        await this.contactBook.rememberReports(sessionId, batch.contacts, trx)
      }
      return this.deps.recorder.store(
        eventSession(session),
        [
          {
            type: 'history.sync',
            data: {
              syncType: batch.syncType,
              progress: batch.progress,
              messages: stored,
              chats: chats.length,
              contacts: batch.contacts.length,
            },
          },
        ],
        trx,
      )
    })
    this.deps.recorder.publish(events)
  }

  /** The options a vote chose, read with the poll this session stored (see poll-votes.ts). */
  private async voteDetails(
    session: SessionRecord,
    message: EngineMessage,
    vote: NormalizedMessage,
  ): Promise<NormalizedMessage['details']> {
    const poll = vote.targetId ? await this.deps.messages.getByWaId(session.id, vote.targetId) : undefined
    const options =
      poll &&
      decryptVote(
        message,
        poll,
        { jid: vote.senderJid, lid: vote.senderLid },
        { jid: session.jid, lid: session.lid },
      )
    return options ? { options } : vote.details
  }

  /** A batch of receipts: the statuses and their `message.status` events in one transaction. */
  private async applyStatuses(sessionId: string, reports: StatusReport[]): Promise<void> {
    const session = await this.deps.session(sessionId)
    if (!session) return
    const events = await this.deps.database.db.transaction().execute(async (trx) => {
      const items: { type: 'message.status'; data: DomainEventMap['message.status'] }[] = []
      for (const report of reports) {
        const waId = report.key.id
        if (!waId) continue
        const updated = await this.deps.messages.updateStatusByWaId(
          sessionId,
          waId,
          report.status,
          this.now(),
          trx,
        )
        if (!updated) continue
        items.push({
          type: 'message.status',
          data: { id: updated.id, waId, chatJid: updated.chatJid, status: report.status },
        })
      }
      return this.deps.recorder.store(eventSession(session), items, trx)
    })
    this.deps.recorder.publish(events)
  }

  /**
   * The name a member goes by in a group, from their message there; a group WhatsApp never
   * told us about (we were added while its notification was missed) is looked up first.
   * A failure here must not keep the message, or the rest of the batch, from being stored.
   */
  private async rememberGroupName(session: SessionRecord, message: NormalizedMessage): Promise<void> {
    try {
      if (message.pushName) {
        const member = { jid: message.senderJid, lid: message.senderLid }
        await this.deps.groups.rememberName(session, message.chatJid, member, message.pushName)
      } else {
        await this.deps.groups.get(session, message.chatJid)
      }
    } catch (err) {
      this.deps.logger.warn({ err, sessionId: session.id }, 'learning a group from its message failed')
    }
  }

  /** Contacts WhatsApp reported live (address book, app state): stored with their changes as events. */
  private async contactsChanged(sessionId: string, reports: ContactReport[]): Promise<void> {
    const session = await this.deps.session(sessionId)
    if (!session) return
    await this.recordChanges(session, (trx) => this.contactBook.rememberReports(sessionId, reports, trx))
  }

  /** WhatsApp told us which number a LID is: kept, and put on the contact when it lacked it. */
  private async lidsMapped(sessionId: string, pairs: { lid: string; pn: string }[]): Promise<void> {
    const session = await this.deps.session(sessionId)
    if (!session) return
    await this.recordChanges(session, async (trx) => {
      const updates: ContactUpdate[] = []
      for (const { lid, pn } of pairs)
        updates.push(...(await this.contactBook.mapLid(sessionId, lid, pn, trx)))
      return updates
    })
  }

  /** Writes contacts and their `contact.update` events in one transaction, then publishes them. */
  private async recordChanges(
    session: SessionRecord,
    write: (trx: Executor) => Promise<ContactUpdate[]>,
  ): Promise<void> {
    const events = await this.deps.database.db.transaction().execute(async (trx) => {
      const updates = await write(trx)
      return this.deps.recorder.store(
        eventSession(session),
        updates.map((data) => ({ type: 'contact.update' as const, data })),
        trx,
      )
    })
    this.deps.recorder.publish(events)
  }

  /**
   * Who wrote it: their push name, LID and phone number, for contacts and the LID map. In a
   * group the name shown may be the one they use there, so it only fills a gap. A sender
   * whose previous message in this group (`seen`) had the same details is skipped.
   */
  private async rememberPeople(
    sessionId: string,
    message: NormalizedMessage,
    seen: Map<string, string>,
    trx: Executor,
  ): Promise<ContactUpdate[]> {
    if (message.fromMe) return []
    const jid = message.senderJid ?? message.senderLid
    if (!jid) return []
    const inGroup = chatKind(message.chatJid) === 'group'
    // Skipped only when this sender's last message in the group said exactly the same.
    const details = [message.senderLid, message.senderJid, message.pushName, inGroup].join('\u0000')
    if (seen.get(jid) === details) return []
    seen.set(jid, details)
    const pushName =
      message.pushName && (!inGroup || !(await this.deps.contacts.get(sessionId, jid, trx))?.pushName)
        ? message.pushName
        : undefined
    const changes = await this.contactBook.remember(
      sessionId,
      [
        {
          jid,
          ...(message.senderLid ? { lid: message.senderLid } : {}),
          ...(message.senderJid ? { phone: phoneOf(message.senderJid) } : {}),
          ...(pushName ? { pushName } : {}),
        },
      ],
      trx,
    )
    // A LID stands for one number for good: once mapped, a read is all a message costs.
    const { senderJid, senderLid } = message
    if (
      senderJid &&
      senderLid &&
      (await this.deps.contacts.pnForLid(sessionId, senderLid, trx)) !== senderJid
    ) {
      await this.deps.contacts.mapLid(sessionId, senderLid, senderJid, trx)
    }
    return changes
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now()
  }
}
