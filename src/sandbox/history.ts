import { deflateSync } from 'node:zlib'
import { proto } from '@whiskeysockets/baileys'
import type { SandboxNetwork } from './network.ts'

export interface HistorySettings {
  /** conversations in the first-link history sync, taken from the account's contacts first */
  chats: number
  /** messages per conversation, alternating between the contact and the account */
  messagesPerChat: number
}

/**
 * The INITIAL_BOOTSTRAP history a phone sends a newly linked device, inline and deflated
 * as WhatsApp does for small histories. Baileys holds back every event after a first
 * link until this arrives (or 20 s pass), so the sandbox always sends one, possibly empty.
 */
export function initialHistorySync(network: SandboxNetwork, settings: HistorySettings): proto.IMessage {
  const contacts = network.users('contact').slice(0, settings.chats)
  const now = Math.floor(Date.now() / 1000)
  const conversations = contacts.map((contact, chatIndex): proto.IConversation => {
    const messages: proto.IHistorySyncMsg[] = []
    for (let i = 0; i < settings.messagesPerChat; i++) {
      const fromMe = i % 2 === 1
      messages.push({
        msgOrderId: i + 1,
        message: {
          key: { remoteJid: contact.jid, fromMe, id: network.messageId() },
          message: { conversation: `history ${chatIndex + 1}.${i + 1}` },
          messageTimestamp: now - (settings.messagesPerChat - i) * 60,
          ...(fromMe ? {} : { pushName: contact.pushName }),
          status: fromMe ? proto.WebMessageInfo.Status.READ : proto.WebMessageInfo.Status.DELIVERY_ACK,
        },
      })
    }
    return {
      id: contact.jid,
      name: contact.pushName,
      lidJid: contact.lidJid,
      unreadCount: 0,
      conversationTimestamp: now,
      messages,
    }
  })
  const history = proto.HistorySync.encode({
    syncType: proto.HistorySync.HistorySyncType.INITIAL_BOOTSTRAP,
    conversations,
    pushnames: contacts.map((c) => ({ id: c.jid, pushname: c.pushName })),
    progress: 100,
    chunkOrder: 0,
  }).finish()
  return {
    protocolMessage: {
      type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION,
      historySyncNotification: {
        syncType: proto.HistorySync.HistorySyncType.INITIAL_BOOTSTRAP,
        initialHistBootstrapInlinePayload: deflateSync(history),
        progress: 100,
        chunkOrder: 0,
      },
    },
  }
}
