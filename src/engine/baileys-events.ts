import type { EventEmitter } from 'node:events'
import { type BaileysEventMap, proto, type WASocket } from '@whiskeysockets/baileys'
import type { ContactReport, EngineEventMap, StatusReport } from './engine.ts'

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
  socket.ev.on('groups.update', (groups) => groupsChanged(groups.map((g) => g.id)))
  socket.ev.on('group-participants.update', (update) => groupsChanged([update.id]))
  socket.ev.on('lid-mapping.update', (mapping) => {
    events.emit('lid-mapping', [{ lid: mapping.lid, pn: mapping.pn }])
  })
}
