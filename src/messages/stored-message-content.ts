import { proto } from '@whiskeysockets/baileys'
import { bareJid, chatKind } from '../domain/jid.ts'
import type { ContactsRepository } from '../store/contacts.repository.ts'
import type { MessagesRepository } from '../store/messages.repository.ts'

export interface StoredMessageSources {
  messages: Pick<MessagesRepository, 'getByWaId'>
  contacts: Pick<ContactsRepository, 'pnForLid' | 'lidForPn'>
}

/**
 * The content of a message the session stored, as Baileys asks for it: to re-encrypt what
 * we sent when a recipient's device retries decryption, and to open poll votes.
 *
 * Baileys names the chat by whichever address the request came with, and WhatsApp moves
 * chats between phone JIDs and LIDs: a retry receipt from `…@lid` can be about a message
 * we stored under the `…@s.whatsapp.net` chat (or the other way round). So the chat is a
 * hint, not a filter: the chat itself first, then its other address from the LID map, then
 * the WhatsApp id anywhere in the session (ids are random; a collision across chats is
 * not a case worth failing a retry for).
 */
export async function storedMessageContent(
  sources: StoredMessageSources,
  sessionId: string,
  key: { id?: string | null; remoteJid?: string | null },
): Promise<proto.IMessage | undefined> {
  if (!key.id) return undefined
  const chats: string[] = []
  if (key.remoteJid) {
    const chat = bareJid(key.remoteJid)
    chats.push(chat)
    const kind = chatKind(chat)
    const alternate =
      kind === 'lid'
        ? await sources.contacts.pnForLid(sessionId, chat)
        : kind === 'user'
          ? await sources.contacts.lidForPn(sessionId, chat)
          : undefined
    if (alternate) chats.push(alternate)
  }
  for (const chat of chats) {
    const stored = await sources.messages.getByWaId(sessionId, key.id, chat)
    if (stored) return decode(stored.raw)
  }
  return decode((await sources.messages.getByWaId(sessionId, key.id))?.raw ?? null)
}

function decode(raw: string | null): proto.IMessage | undefined {
  return raw ? proto.Message.decode(Buffer.from(raw, 'base64')) : undefined
}
