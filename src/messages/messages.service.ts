import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateMessageIDV2 } from '@whiskeysockets/baileys'
import type { Principal } from '../accounts/api-key.types.ts'
import { AppError, invalidRequest, invalidState, notFound } from '../domain/errors.ts'
import type { IdGenerator } from '../domain/ids.ts'
import { chatKind, normalizeRecipient } from '../domain/jid.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import type { IdempotencyRepository } from '../store/idempotency.repository.ts'
import type { MessageRecord, MessagesRepository } from '../store/messages.repository.ts'
import type { MediaFetcher } from './media-fetcher.ts'
import type { MessageType } from './message.types.ts'
import type { StoredSendRequest } from './outbound-content.ts'
import type { OutboundQueue } from './outbound-queue.ts'
import { DEFAULT_PACING, type Pacer } from './pacer.ts'
import { MEDIA_LIMITS, MEDIA_MIME_TYPES, type MediaKind, type SendMessageBody } from './send-request.ts'

export interface Accepted {
  id: string
  waId: string
  status: 'pending'
  sendAfter: string
}

const MEDIA_KINDS = new Set<string>(['image', 'video', 'audio', 'document', 'sticker'])
const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000

/**
 * Accepting messages to send: validation that names the field, the recipient normalized,
 * media fetched and checked now (so a bad URL fails the request, not the queue), a paced
 * send time, a durable row — and with an Idempotency-Key, the first result again for a
 * repeat of the same request.
 */
export class MessagesService {
  private readonly deps: {
    messages: MessagesRepository
    idempotency: IdempotencyRepository
    queue: OutboundQueue
    pacer: Pacer
    media: MediaFetcher
    dataDir: string
    newId: IdGenerator
    now?: () => number
  }

  constructor(deps: MessagesService['deps']) {
    this.deps = deps
  }

  async send(
    principal: Principal,
    session: SessionRecord,
    body: SendMessageBody,
    idempotencyKey?: string,
  ): Promise<Accepted> {
    const requestHash = idempotencyKey
      ? createHash('sha256')
          .update(JSON.stringify([session.id, body]))
          .digest('hex')
      : undefined
    if (idempotencyKey && requestHash) {
      const previous = await this.deps.idempotency.get(principal.organizationId, idempotencyKey)
      if (previous && previous.createdAt > this.now() - IDEMPOTENCY_WINDOW_MS) {
        if (previous.requestHash !== requestHash) {
          throw new AppError('conflict', 'this Idempotency-Key was used for a different request')
        }
        return previous.response as Accepted
      }
    }
    if (session.status !== 'ready' && !body.queue) {
      throw invalidState(
        `the session is ${session.status}, not ready: send when it is, or pass "queue": true to send once it is`,
      )
    }
    const accepted = await this.accept(session, body)
    if (idempotencyKey && requestHash) {
      const first = await this.deps.idempotency.insert({
        organizationId: principal.organizationId,
        key: idempotencyKey,
        requestHash,
        response: accepted,
        createdAt: this.now(),
      })
      // Two identical requests raced: the loser's message must not go out.
      if (!first) {
        await this.deps.messages.update(accepted.id, {
          status: 'failed',
          failureReason: 'duplicate of an idempotent request',
          sendRequest: null,
        })
        const winner = await this.deps.idempotency.get(principal.organizationId, idempotencyKey)
        return winner?.response as Accepted
      }
    }
    this.deps.queue.wake(session.id)
    return accepted
  }

  /** A stored message sent on to another chat, as a new paced message. */
  async forward(session: SessionRecord, original: MessageRecord, to: string): Promise<Accepted> {
    if (session.status !== 'ready') throw invalidState(`the session is ${session.status}, not ready`)
    const jid = normalizeRecipient(to)
    const now = this.now()
    const id = this.deps.newId('message')
    const sendAfter = this.deps.pacer.schedule(session.id, session.config.pacing ?? DEFAULT_PACING, now)
    const waId = generateMessageIDV2(session.jid ?? undefined)
    await this.deps.messages.insertIfNew({
      ...original,
      id,
      waId,
      chatJid: jid,
      chatLid: null,
      fromMe: true,
      senderJid: session.phone ? `${session.phone}@s.whatsapp.net` : null,
      senderLid: null,
      pushName: null,
      timestamp: now,
      quotedId: null,
      targetId: null,
      details: { ...(original.details ?? {}), forwarded: true },
      media: original.media ? { ...original.media, mediaId: undefined } : null,
      status: 'pending',
      failureReason: null,
      raw: null,
      sendRequest: {
        kind: 'forward',
        jid,
        mentions: [],
        original: {
          waId: original.waId,
          chatJid: original.chatJid,
          fromMe: original.fromMe,
          raw: original.raw ?? '',
        },
      } satisfies StoredSendRequest,
      sendAfter,
      createdAt: now,
      updatedAt: now,
    })
    this.deps.queue.wake(session.id)
    return { id, waId, status: 'pending', sendAfter: new Date(sendAfter).toISOString() }
  }

  async get(session: SessionRecord, id: string): Promise<MessageRecord> {
    const message =
      (await this.deps.messages.getById(session.id, id)) ??
      (await this.deps.messages.getByWaId(session.id, id))
    if (!message) throw notFound(`message ${id}`)
    return message
  }

  private async accept(session: SessionRecord, body: SendMessageBody): Promise<Accepted> {
    const jid = normalizeRecipient(body.to)
    const mentions = (body.mentions ?? []).map((m, i) => normalizeRecipient(m, `body.mentions.${i}`))
    const id = this.deps.newId('message')
    const waId = generateMessageIDV2(session.jid ?? undefined)
    const quoted = body.replyTo ? await this.quoted(session, body.replyTo, jid, 'body.replyTo') : undefined
    const { request, type, text, details, media, targetId } = await this.resolve(session, id, body)
    const now = this.now()
    const sendAfter = this.deps.pacer.schedule(session.id, session.config.pacing ?? DEFAULT_PACING, now)
    const stored = { ...request, jid, mentions, ...(quoted ? { quoted } : {}) } as StoredSendRequest
    await this.deps.messages.insertIfNew({
      id,
      sessionId: session.id,
      waId,
      chatJid: jid,
      chatLid: null,
      fromMe: true,
      senderJid: session.phone ? `${session.phone}@s.whatsapp.net` : null,
      senderLid: null,
      pushName: null,
      timestamp: now,
      type,
      text,
      media,
      quotedId: quoted?.waId ?? null,
      mentions,
      targetId,
      details,
      status: 'pending',
      failureReason: null,
      raw: null,
      sendRequest: stored,
      sendAfter,
      createdAt: now,
      updatedAt: now,
    })
    return { id, waId, status: 'pending', sendAfter: new Date(sendAfter).toISOString() }
  }

  /** The stored request and the message's normalized fields, per type. */
  private async resolve(session: SessionRecord, id: string, body: SendMessageBody) {
    const none = { text: null, details: null, media: null, targetId: null }
    switch (body.type) {
      case 'text':
        return {
          ...none,
          type: 'text' as MessageType,
          text: body.text.body,
          request: { kind: 'text', text: body.text.body, previewUrl: Boolean(body.text.previewUrl) },
        }
      case 'location':
        return {
          ...none,
          type: 'location' as MessageType,
          details: { ...body.location },
          request: { kind: 'location', ...body.location },
        }
      case 'contact':
        return {
          ...none,
          type: 'contact' as MessageType,
          details: { contacts: body.contact.contacts },
          request: { kind: 'contact', contacts: body.contact.contacts },
        }
      case 'poll':
        return {
          ...none,
          type: 'poll' as MessageType,
          text: body.poll.name,
          details: { ...body.poll },
          request: { kind: 'poll', ...body.poll },
        }
      case 'reaction': {
        const target = await this.quoted(
          session,
          body.reaction.messageId,
          normalizeRecipient(body.to),
          'body.reaction.messageId',
        )
        return {
          ...none,
          type: 'reaction' as MessageType,
          targetId: target.waId,
          details: { emoji: body.reaction.emoji },
          request: { kind: 'reaction', emoji: body.reaction.emoji, target },
        }
      }
      default: {
        const kind = body.type as MediaKind
        const source = (body as Record<string, unknown>)[kind] as {
          url?: string
          base64?: string
          mimetype?: string
          caption?: string
          fileName?: string
          voice?: boolean
        }
        const file = await this.deps.media.fetch(source, MEDIA_LIMITS[kind], `body.${kind}`)
        const mimetype = source.mimetype ?? file.mimetype
        if (!mimetype || !MEDIA_MIME_TYPES[kind].test(mimetype)) {
          throw invalidRequest(
            `body.${kind}.mimetype: ${mimetype ?? 'unknown'} is not a supported ${kind} type`,
            [{ path: `body.${kind}.mimetype`, message: `unsupported for ${kind}` }],
          )
        }
        const directory = join(this.deps.dataDir, 'outbox', session.id)
        await mkdir(directory, { recursive: true, mode: 0o700 })
        const path = join(directory, id)
        await writeFile(path, file.bytes, { mode: 0o600 })
        return {
          ...none,
          type: kind as MessageType,
          text: source.caption ?? null,
          media: {
            type: kind,
            mimetype,
            size: file.bytes.length,
            ...(source.fileName ? { fileName: source.fileName } : {}),
            ...(kind === 'audio' ? { ptt: Boolean(source.voice) } : {}),
          },
          request: {
            kind,
            path,
            mimetype,
            ...(source.caption ? { caption: source.caption } : {}),
            ...(source.fileName ? { fileName: source.fileName } : {}),
            ...(source.voice ? { voice: true } : {}),
          },
        }
      }
    }
  }

  /** A message in this chat to quote or react to, by wagate id or WhatsApp id. */
  private async quoted(session: SessionRecord, reference: string, chatJid: string, field: string) {
    const message =
      (await this.deps.messages.getById(session.id, reference)) ??
      (await this.deps.messages.getByWaId(session.id, reference, chatJid))
    if (!message || message.chatJid !== chatJid) {
      throw invalidRequest(`${field}: no message ${reference} in this chat`, [
        { path: field, message: 'not found in this chat' },
      ])
    }
    const group = chatKind(chatJid) === 'group'
    return {
      waId: message.waId,
      chatJid,
      fromMe: message.fromMe,
      ...(group && message.senderJid ? { participant: message.senderJid } : {}),
      raw: message.raw,
    }
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now()
  }
}

export const isMediaKind = (value: string): value is MediaKind => MEDIA_KINDS.has(value)
