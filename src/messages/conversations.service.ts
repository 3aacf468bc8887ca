import { createReadStream } from 'node:fs'
import type { Readable } from 'node:stream'
import { invalidRequest, invalidState, notFound } from '../domain/errors.ts'
import { bareJid, normalizeRecipient } from '../domain/jid.ts'
import type { EngineConnection } from '../engine/engine.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import type { ChatsRepository } from '../store/chats.repository.ts'
import type { ContactsRepository } from '../store/contacts.repository.ts'
import type { GroupsRepository } from '../store/groups.repository.ts'
import type { MediaFilesRepository } from '../store/media-files.repository.ts'
import type { MessagesRepository } from '../store/messages.repository.ts'

/**
 * Reading what a session has seen — chats, timelines, contacts with the groups they share
 * with the session, media — and the small live actions around a chat (mark read, typing,
 * "is this number on WhatsApp").
 */
export class ConversationsService {
  private readonly deps: {
    messages: MessagesRepository
    chats: ChatsRepository
    contacts: ContactsRepository
    groups: GroupsRepository
    mediaFiles: MediaFilesRepository
    connection: (sessionId: string) => EngineConnection | undefined
  }

  constructor(deps: ConversationsService['deps']) {
    this.deps = deps
  }

  listChats(session: SessionRecord, query: { q?: string; cursor?: string; limit: number }) {
    return this.deps.chats.list(session.id, query)
  }

  async timeline(
    session: SessionRecord,
    chatId: string,
    query: { before?: string; after?: string; limit: number },
  ) {
    const jid = await this.chatJid(session, chatId)
    return this.deps.messages.listByChat(session.id, jid, query)
  }

  async markRead(session: SessionRecord, chatId: string): Promise<void> {
    const jid = await this.chatJid(session, chatId)
    const connection = this.live(session)
    const page = await this.deps.messages.listByChat(session.id, jid, { limit: 50 })
    const unread = page.items.filter((m) => !m.fromMe)
    if (unread.length) {
      await connection.markRead(
        unread.map((m) => ({
          remoteJid: jid,
          id: m.waId,
          fromMe: false,
          ...(m.senderJid && jid.endsWith('@g.us') ? { participant: m.senderJid } : {}),
        })),
      )
    }
    await this.deps.chats.setRead(session.id, jid)
  }

  async presence(
    session: SessionRecord,
    state: 'available' | 'unavailable' | 'composing' | 'recording' | 'paused',
    chatId?: string,
  ) {
    const jid = chatId ? normalizeRecipient(chatId, 'body.chatId') : undefined
    if ((state === 'composing' || state === 'recording' || state === 'paused') && !jid) {
      throw invalidRequest('body.chatId: typing, recording and paused are shown in a chat', [
        { path: 'body.chatId', message: `required for ${state}` },
      ])
    }
    await this.live(session).sendPresence(state, jid)
  }

  async checkNumbers(session: SessionRecord, numbers: string[]) {
    const jids = numbers.map((n, i) => normalizeRecipient(n, `body.numbers.${i}`))
    const results = await this.live(session).onWhatsApp(jids)
    return results.map((r, i) => ({ input: numbers[i] ?? '', jid: r.jid, exists: r.exists }))
  }

  searchContacts(session: SessionRecord, query: { q?: string; cursor?: string; limit: number }) {
    return this.deps.contacts.search(session.id, query)
  }

  /** A contact with their direct chat and every group they share with the session, with their name there. */
  async contact(session: SessionRecord, contactId: string) {
    const jid = normalizeRecipient(contactId, 'params.contactId')
    const contact = await this.deps.contacts.get(session.id, jid)
    if (!contact) throw notFound(`contact ${contactId}`)
    const chat =
      (await this.deps.chats.get(session.id, contact.jid)) ??
      (contact.lid ? await this.deps.chats.get(session.id, contact.lid) : undefined)
    const groups = new Map<string, Awaited<ReturnType<GroupsRepository['listContaining']>>[number]>()
    for (const address of [contact.jid, contact.lid].filter((a): a is string => Boolean(a))) {
      for (const group of await this.deps.groups.listContaining(session.id, address))
        groups.set(group.jid, group)
    }
    return {
      contact,
      chat: chat ?? null,
      groups: [...groups.values()].map((group) => {
        const member = group.participants.find(
          (p) =>
            [p.jid, p.lid, p.phone && `${p.phone}@s.whatsapp.net`].includes(contact.jid) ||
            (contact.lid && p.lid === contact.lid),
        )
        return {
          jid: group.jid,
          subject: group.subject,
          role: member?.role ?? 'member',
          nameInGroup: member?.name ?? null,
        }
      }),
    }
  }

  async media(
    session: SessionRecord,
    mediaId: string,
  ): Promise<{ stream: Readable; mimetype: string; size: number }> {
    const file = await this.deps.mediaFiles.get(session.id, mediaId)
    if (!file) throw notFound(`media ${mediaId}`)
    return { stream: createReadStream(file.path), mimetype: file.mimetype, size: file.size }
  }

  private async chatJid(session: SessionRecord, chatId: string): Promise<string> {
    const jid = normalizeRecipient(chatId, 'params.chatId')
    if (await this.deps.chats.get(session.id, jid)) return jid
    // A chat WhatsApp addressed by LID can be named by the phone number, and the reverse.
    const lid = jid.endsWith('@s.whatsapp.net')
      ? await this.deps.contacts.lidForPn(session.id, jid)
      : undefined
    const pn = jid.endsWith('@lid') ? await this.deps.contacts.pnForLid(session.id, jid) : undefined
    for (const alternative of [lid, pn]) {
      if (alternative && (await this.deps.chats.get(session.id, bareJid(alternative))))
        return bareJid(alternative)
    }
    return jid
  }

  private live(session: SessionRecord): EngineConnection {
    const connection = this.deps.connection(session.id)
    if (session.status !== 'ready' || !connection)
      throw invalidState(`the session is ${session.status}, not ready`)
    return connection
  }
}
