import type { ChatRecord } from '../store/chats.repository.ts'
import type { ContactRecord } from '../store/contacts.repository.ts'
import type { GroupRecord } from '../store/groups.repository.ts'

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

export const chatView = (chat: ChatRecord) => ({
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

export const contactView = (contact: ContactRecord) => ({
  id: contact.jid,
  lid: contact.lid,
  phone: contact.phone,
  name: contact.name,
  pushName: contact.pushName,
  verifiedName: contact.verifiedName,
  isBusiness: contact.isBusiness,
  updatedAt: iso(contact.updatedAt),
})

export const groupView = (group: GroupRecord) => ({
  id: group.jid,
  subject: group.subject,
  description: group.description,
  owner: group.owner,
  createdAt: iso(group.createdAt),
  announce: group.announce,
  restrict: group.restrict,
  participants: group.participants,
  updatedAt: iso(group.updatedAt),
})
