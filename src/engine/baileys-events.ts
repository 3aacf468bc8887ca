import type { EventEmitter } from 'node:events'
import { type BaileysEventMap, isJidGroup, proto, type WASocket } from '@whiskeysockets/baileys'
import {
  type CallReport,
  type ChatReport,
  type ContactReport,
  type EngineEventMap,
  type GroupChangeReport,
  MUTED_FOREVER,
  type StatusReport,
} from './engine.ts'

const STATUS_BY_CODE: Record<number, StatusReport['status']> = {
  [proto.WebMessageInfo.Status.ERROR]: 'failed',
  [proto.WebMessageInfo.Status.SERVER_ACK]: 'sent',
  [proto.WebMessageInfo.Status.DELIVERY_ACK]: 'delivered',
  [proto.WebMessageInfo.Status.READ]: 'read',
  [proto.WebMessageInfo.Status.PLAYED]: 'played',
}

const toMs = (value: unknown): number | undefined => {
  if (value === null || value === undefined) return undefined
  const seconds = typeof value === 'number' ? value : Number(value)
  return Number.isFinite(seconds) ? seconds * 1000 : undefined
}

function contactReport(
  contact: BaileysEventMap['contacts.upsert'][number] | Partial<BaileysEventMap['contacts.upsert'][number]>,
): ContactReport | undefined {
  const jid = contact.phoneNumber ?? contact.id
  if (!jid) return undefined
  return {
    jid,
    ...(contact.lid ? { lid: contact.lid } : {}),
    ...(contact.name ? { name: contact.name } : {}),
    ...(contact.notify ? { pushName: contact.notify } : {}),
    ...(contact.verifiedName ? { verifiedName: contact.verifiedName } : {}),
  }
}

/**
 * Translates Baileys' event stream into the engine's: messages (live and offline), history
 * batches, delivery statuses and receipts, contacts and LID mappings. Baileys types stay
 * behind this line except the protocol's own message record.
 */
export function forwardMessagingEvents(socket: WASocket, events: EventEmitter<EngineEventMap>): void {
  socket.ev.on('messages.upsert', ({ messages, type }) => {
    events.emit('messages', { kind: type === 'notify' ? 'notify' : 'append', messages })
    // Receipts that arrive while Baileys buffers events are folded into the echo of our own
    // message instead of a messages.update: report them as statuses all the same.
    const folded: StatusReport[] = []
    for (const message of messages) {
      const status = message.status ? STATUS_BY_CODE[message.status] : undefined
      if (message.key.fromMe && status && status !== 'sent') folded.push({ key: message.key, status })
    }
    if (folded.length) events.emit('message-status', folded)
  })
  socket.ev.on('messaging-history.set', (history) => {
    events.emit('history', {
      messages: history.messages,
      chats: history.chats.flatMap((chat) =>
        chat.id
          ? [
              {
                jid: chat.id,
                ...(chat.name ? { name: chat.name } : {}),
                ...(typeof chat.unreadCount === 'number' ? { unreadCount: chat.unreadCount } : {}),
                ...(chat.conversationTimestamp ? { lastMessageAt: toMs(chat.conversationTimestamp) } : {}),
                ...(chat.archived ? { archived: true } : {}),
                ...(chat.pinned ? { pinned: true } : {}),
              },
            ]
          : [],
      ),
      contacts: history.contacts.map(contactReport).filter((c): c is ContactReport => c !== undefined),
      lidMappings: (history.lidPnMappings ?? []).map((m) => ({ lid: m.lid, pn: m.pn })),
      progress: history.progress ?? null,
      syncType:
        history.syncType === undefined || history.syncType === null
          ? 'unknown'
          : (proto.HistorySync.HistorySyncType[history.syncType] ?? String(history.syncType)),
    })
  })
  // Baileys listens for failed acks only; a good one is the server saying it has the message.
  socket.ws.on('CB:ack,class:message', (node: { attrs: Record<string, string | undefined> }) => {
    const id = node.attrs.id
    if (id && node.attrs.error === undefined) events.emit('message-acked', id)
  })
  socket.ev.on('messages.update', (updates) => {
    const reports: StatusReport[] = []
    for (const { key, update } of updates) {
      const status =
        update.status === undefined || update.status === null ? undefined : STATUS_BY_CODE[update.status]
      if (status && key.fromMe) reports.push({ key, status })
    }
    if (reports.length) events.emit('message-status', reports)
  })
  socket.ev.on('message-receipt.update', (receipts) => {
    // Group receipts arrive per member; a message counts as delivered/read once anyone has.
    const reports: StatusReport[] = receipts.map(({ key, receipt }) => ({
      key,
      status: receipt.readTimestamp ? 'read' : 'delivered',
      ...(receipt.userJid ? { participant: receipt.userJid } : {}),
    }))
    if (reports.length) events.emit('message-status', reports)
  })
  const contacts = (list: Partial<BaileysEventMap['contacts.upsert'][number]>[]) => {
    // A report with nothing but an address (a profile picture changed) says nothing to keep.
    const reports = list
      .map(contactReport)
      .filter((c): c is ContactReport => c !== undefined && Object.keys(c).length > 1)
    if (reports.length) events.emit('contacts', reports)
  }
  socket.ev.on('contacts.upsert', contacts)
  // Baileys echoes the push name of every message it receives as an update, keyed by the
  // chat's address (a LID, or the member of a group, where the name shown may be the one
  // they use in that group). The ingest reads names from the messages themselves, where
  // it knows which is which; the echo would file them under the wrong contact.
  socket.ev.on('contacts.update', (updates) => contacts(updates.map(({ notify: _echo, ...rest }) => rest)))
  const groupsChanged = (jids: (string | undefined | null)[]) => {
    const known = jids.filter((jid): jid is string => Boolean(jid))
    if (known.length) events.emit('groups', { jids: known })
  }
  socket.ev.on('groups.upsert', (groups) => groupsChanged(groups.map((g) => g.id)))
  socket.ev.on('lid-mapping.update', (mapping) => {
    events.emit('lid-mapping', [{ lid: mapping.lid, pn: mapping.pn }])
  })
  forwardStateEvents(socket, events)
}

const CALL_STATUSES = new Set<CallReport['status']>([
  'offer',
  'ringing',
  'timeout',
  'reject',
  'accept',
  'terminate',
])

/**
 * Translates what WhatsApp says changed outside messages: presence, chat state the phone
 * synced, group info and members, calls.
 */
function forwardStateEvents(socket: WASocket, events: EventEmitter<EngineEventMap>): void {
  socket.ev.on('presence.update', ({ id, presences }) => {
    for (const [participant, { lastKnownPresence, lastSeen }] of Object.entries(presences)) {
      events.emit('presence', {
        chatJid: id,
        participant,
        presence: lastKnownPresence,
        ...(lastSeen ? { lastSeen: lastSeen * 1000 } : {}),
      })
    }
  })
  socket.ev.on('chats.update', (updates) => {
    const reports = updates.map(chatReport).filter((r): r is ChatReport => r !== undefined)
    if (reports.length) events.emit('chats', reports)
  })
  // A chat created for a group (its create notification) is the group's; a 1:1 one may bring a name.
  socket.ev.on('chats.upsert', (chats) => {
    const reports = chats.flatMap((chat) =>
      chat.id && chat.name && !isJidGroup(chat.id) ? [{ jid: chat.id, name: chat.name }] : [],
    )
    if (reports.length) events.emit('chats', reports)
  })
  socket.ev.on('groups.update', (updates) => {
    const reports = updates.map(groupChange).filter((r): r is GroupChangeReport => r !== undefined)
    if (reports.length) events.emit('group-update', reports)
  })
  socket.ev.on('group-participants.update', ({ id, author, authorPn, participants, action }) => {
    events.emit('group-participants', {
      jid: id,
      action,
      participants: participants.map((p) => {
        const alt = p.phoneNumber ?? p.lid
        return { jid: p.id, ...(alt ? { alt } : {}) }
      }),
      ...(author ? { author } : {}),
      ...(authorPn ? { authorAlt: authorPn } : {}),
    })
  })
  socket.ev.on('call', (calls) => {
    events.emit(
      'call',
      calls.map((call) => ({
        id: call.id,
        status: CALL_STATUSES.has(call.status as CallReport['status'])
          ? (call.status as CallReport['status'])
          : 'other',
        from: call.from,
        ...(call.callerPn ? { callerPn: call.callerPn } : {}),
        chatJid: call.chatId,
        isVideo: Boolean(call.isVideo),
        isGroup: Boolean(call.isGroup),
        ...(call.groupJid ? { groupJid: call.groupJid } : {}),
        offline: call.offline,
        at: call.date.getTime(),
      })),
    )
  })
}

/**
 * The state changes in a Baileys chat update. Baileys also sends one for every message
 * (its time, one more unread): that bookkeeping is the message ingest's, so an update
 * carrying a message time reports only what else it says (a new message unarchiving).
 */
function chatReport(update: BaileysEventMap['chats.update'][number]): ChatReport | undefined {
  if (!update.id) return undefined
  const forMessage = update.conversationTimestamp !== undefined || update.messages !== undefined
  const report: ChatReport = { jid: update.id }
  if (typeof update.archived === 'boolean') report.archived = update.archived
  // Baileys reports the time it was pinned, or null when unpinned.
  if ('pinned' in update && update.pinned !== undefined) report.pinned = Boolean(update.pinned)
  if ('muteEndTime' in update && update.muteEndTime !== undefined) {
    const end = update.muteEndTime === null ? null : Number(update.muteEndTime)
    report.mutedUntil = end === null ? null : end < 0 ? MUTED_FOREVER : end
  }
  // 0: marked read; -1: marked unread (app state); anything else counts messages.
  if (!forMessage && (update.unreadCount === 0 || update.unreadCount === -1)) {
    report.read = update.unreadCount === 0
  }
  if (typeof update.name === 'string' && !isJidGroup(update.id)) report.name = update.name
  return Object.keys(report).length > 1 ? report : undefined
}

/**
 * A group's info as a change names it. A full description of the group (its members
 * listed: Baileys announces every group it fetched) is not a change, and is skipped.
 */
function groupChange(update: BaileysEventMap['groups.update'][number]): GroupChangeReport | undefined {
  if (!update.id || update.participants) return undefined
  const report: GroupChangeReport = { jid: update.id }
  if (typeof update.subject === 'string') report.subject = update.subject
  if ('desc' in update) report.description = update.desc ?? null
  if (typeof update.announce === 'boolean') report.announce = update.announce
  if (typeof update.restrict === 'boolean') report.restrict = update.restrict
  const changed = Object.keys(report).length > 1
  if (!changed) return undefined
  const author = (update as { author?: string }).author
  const authorPn = (update as { authorPn?: string }).authorPn
  return { ...report, ...(author ? { author } : {}), ...(authorPn ? { authorAlt: authorPn } : {}) }
}
