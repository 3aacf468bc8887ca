import type { z } from 'zod'
import type { ChatRecord } from '../store/chats.repository.ts'
import type { ContactRecord } from '../store/contacts.repository.ts'
import type { GroupRecord } from '../store/groups.repository.ts'
import type { MessageRecord } from '../store/messages.repository.ts'
import type * as schemas from './schemas-messaging.ts'

/*
 * Stored records as the API shows them. Each view is typed by its response schema
 * (schemas-messaging.ts), so a field added to one and not the other fails to compile.
 */

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

export const messageView = (message: MessageRecord): z.input<typeof schemas.message> => ({
  id: message.id,
  waId: message.waId,
  chatId: message.chatJid,
  chatLid: message.chatLid,
  fromMe: message.fromMe,
  sender: { jid: message.senderJid, lid: message.senderLid, pushName: message.pushName },
  timestamp: new Date(message.timestamp).toISOString(),
  type: message.type,
  text: message.text,
  media: message.media,
  quotedId: message.quotedId,
  mentions: message.mentions,
  targetId: message.targetId,
  details: message.details,
  status: message.status,
  failureReason: message.failureReason,
  sendAfter: iso(message.sendAfter),
})

export const chatView = (chat: ChatRecord): z.input<typeof schemas.chat> => ({
  id: chat.jid,
  lid: chat.lid,
  name: chat.name,
  lastMessageAt: iso(chat.lastMessageAt),
  lastMessageId: chat.lastMessageId,
  unreadCount: chat.unreadCount,
  archived: chat.archived,
  pinned: chat.pinned,
  mutedUntil: iso(chat.mutedUntil),
})

export const contactView = (contact: ContactRecord): z.input<typeof schemas.contact> => ({
  id: contact.jid,
  lid: contact.lid,
  phone: contact.phone,
  name: contact.name,
  pushName: contact.pushName,
  verifiedName: contact.verifiedName,
  isBusiness: contact.isBusiness,
  updatedAt: new Date(contact.updatedAt).toISOString(),
})

export const groupView = (group: GroupRecord): z.input<typeof schemas.group> => ({
  id: group.jid,
  subject: group.subject,
  description: group.description,
  owner: group.owner,
  createdAt: iso(group.createdAt),
  announce: group.announce,
  restrict: group.restrict,
  participants: group.participants,
  updatedAt: new Date(group.updatedAt).toISOString(),
})
