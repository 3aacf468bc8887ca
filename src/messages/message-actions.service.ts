import type { proto } from '@whiskeysockets/baileys'
import { invalidState } from '../domain/errors.ts'
import { chatKind, normalizeRecipient } from '../domain/jid.ts'
import type { EngineConnection } from '../engine/engine.ts'
import type { EventRecorder } from '../events/event-recorder.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import { eventSession } from '../sessions/session-store.ts'
import type { MessageRecord, MessagesRepository } from '../store/messages.repository.ts'
import type { MessagesService } from './messages.service.ts'
import { eventData } from './outbound-queue.ts'

/** WhatsApp lets a sender edit for 15 minutes; we let WhatsApp be the judge but refuse the obvious. */
const EDITABLE_TYPES = new Set(['text', 'image', 'video', 'document'])

/**
 * Changes to messages already sent — edit, delete for everyone — go out at once (they are
 * not new messages to pace); forwarding makes a new message and goes through the queue.
 */
export class MessageActionsService {
  private readonly deps: {
    messages: MessagesRepository
    sender: MessagesService
    recorder: EventRecorder
    connection: (sessionId: string) => EngineConnection | undefined
    now?: () => number
  }

  constructor(deps: MessageActionsService['deps']) {
    this.deps = deps
  }

  async edit(session: SessionRecord, messageId: string, text: string): Promise<MessageRecord> {
    const target = await this.deps.sender.get(session, messageId)
    if (!target.fromMe) throw invalidState('only messages this session sent can be edited')
    if (!EDITABLE_TYPES.has(target.type)) throw invalidState(`a ${target.type} message cannot be edited`)
    if (target.status === 'pending' || target.status === 'failed')
      throw invalidState(`the message is ${target.status}, not sent`)
    await this.live(session).sendMessage(
      target.chatJid,
      { text, edit: this.keyOf(target) },
      {
        messageId: newWaId(),
      },
    )
    const updated = await this.deps.messages.update(target.id, {
      text,
      details: { ...(target.details ?? {}), edited: true },
    })
    await this.deps.recorder.record(eventSession(session), [
      { type: 'message.edited', data: eventData(updated) },
    ])
    return updated
  }

  async delete(session: SessionRecord, messageId: string): Promise<MessageRecord> {
    const target = await this.deps.sender.get(session, messageId)
    if (!target.fromMe && chatKind(target.chatJid) !== 'group') {
      throw invalidState(
        'only your own messages (or, as a group admin, members’ messages) can be deleted for everyone',
      )
    }
    if (target.status === 'pending') throw invalidState('the message has not been sent yet')
    await this.live(session).sendMessage(
      target.chatJid,
      { delete: this.keyOf(target) },
      { messageId: newWaId() },
    )
    const updated = await this.deps.messages.update(target.id, {
      text: null,
      details: { ...(target.details ?? {}), deleted: true },
    })
    await this.deps.recorder.record(eventSession(session), [
      { type: 'message.deleted', data: eventData(updated) },
    ])
    return updated
  }

  /** Forwards a stored message to another chat, as a new, paced message. */
  async forward(session: SessionRecord, messageId: string, to: string) {
    const target = await this.deps.sender.get(session, messageId)
    if (!target.raw) throw invalidState('the message body is not stored, so it cannot be forwarded')
    normalizeRecipient(to)
    return this.deps.sender.forward(session, target, to)
  }

  private keyOf(message: MessageRecord): proto.IMessageKey {
    return {
      remoteJid: message.chatJid,
      id: message.waId,
      fromMe: message.fromMe,
      ...(chatKind(message.chatJid) === 'group' && message.senderJid && !message.fromMe
        ? { participant: message.senderJid }
        : {}),
    }
  }

  private live(session: SessionRecord): EngineConnection {
    const connection = this.deps.connection(session.id)
    if (session.status !== 'ready' || !connection)
      throw invalidState(`the session is ${session.status}, not ready`)
    return connection
  }
}

const newWaId = () =>
  `3EB0${Buffer.from(crypto.getRandomValues(new Uint8Array(9)))
    .toString('hex')
    .toUpperCase()}`
