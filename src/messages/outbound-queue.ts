import { rm } from 'node:fs/promises'
import { proto } from '@whiskeysockets/baileys'
import type { Logger } from 'pino'
import type { EngineConnection } from '../engine/engine.ts'
import type { EventRecorder } from '../events/event-recorder.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import { eventSession } from '../sessions/session-store.ts'
import type { ChatsRepository } from '../store/chats.repository.ts'
import type { Database } from '../store/db.ts'
import type { MessageRecord, MessagesRepository } from '../store/messages.repository.ts'
import { encodeRaw } from './ingest.service.ts'
import { buildContent, quotedMessage, type StoredSendRequest } from './outbound-content.ts'

const decodeRaw = (raw: string): proto.IMessage => proto.Message.decode(Buffer.from(raw, 'base64'))
const BATCH = 10

/**
 * The durable outbound queue: pending message rows are the queue. Each session has at
 * most one sender loop; it sends due rows in order while the session is ready, sleeps until
 * the next paced send time, and stops when the session is not ready (a `ready` status
 * wakes it again). A restart resumes from the rows.
 */
export class OutboundQueue {
  private readonly deps: {
    database: Database
    messages: MessagesRepository
    chats: ChatsRepository
    recorder: EventRecorder
    logger: Logger
    session: (id: string) => Promise<SessionRecord | undefined>
    connection: (id: string) => EngineConnection | undefined
    now?: () => number
  }
  private readonly running = new Set<string>()
  private readonly rerun = new Set<string>()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private stopped = false

  constructor(deps: OutboundQueue['deps']) {
    this.deps = deps
  }

  /** Something may be due for this session: run its sender loop unless it is running. */
  wake(sessionId: string): void {
    if (this.stopped) return
    clearTimeout(this.timers.get(sessionId))
    this.timers.delete(sessionId)
    if (this.running.has(sessionId)) {
      this.rerun.add(sessionId)
      return
    }
    this.running.add(sessionId)
    void this.drain(sessionId)
      .catch((err) => this.deps.logger.error({ err, sessionId }, 'outbound queue failed'))
      .finally(() => {
        this.running.delete(sessionId)
        if (this.rerun.delete(sessionId)) this.wake(sessionId)
      })
  }

  stop(): void {
    this.stopped = true
    for (const timer of this.timers.values()) clearTimeout(timer)
    this.timers.clear()
  }

  private async drain(sessionId: string): Promise<void> {
    for (;;) {
      const session = await this.deps.session(sessionId)
      const connection = this.deps.connection(sessionId)
      if (session?.status !== 'ready' || !connection || this.stopped) return
      const now = this.now()
      const due = await this.deps.messages.claimDue(sessionId, now, BATCH)
      if (due.length === 0) {
        const next = await this.deps.messages.nextSendAfter(sessionId)
        if (next !== undefined) this.sleep(sessionId, next - now)
        return
      }
      for (const message of due) {
        // the session may have dropped while the previous message was going out
        if ((await this.deps.session(sessionId))?.status !== 'ready') return
        await this.sendOne(session, connection, message)
      }
    }
  }

  private sleep(sessionId: string, delayMs: number): void {
    this.timers.set(
      sessionId,
      setTimeout(() => this.wake(sessionId), Math.max(0, delayMs)),
    )
  }

  private async sendOne(
    session: SessionRecord,
    connection: EngineConnection,
    message: MessageRecord,
  ): Promise<void> {
    const request = message.sendRequest as StoredSendRequest
    try {
      const content = await buildContent(request, decodeRaw)
      const sent = await connection.sendMessage(request.jid, content, {
        messageId: message.waId,
        ...(request.quoted ? { quoted: quotedMessage(request.quoted, decodeRaw) } : {}),
      })
      const at = this.now()
      // The sent state, the chat's activity and their events: one transaction.
      const events = await this.deps.database.db.transaction().execute(async (trx) => {
        await this.deps.messages.update(
          message.id,
          { raw: encodeRaw(sent.message), sendRequest: null, sendAfter: null, timestamp: at },
          trx,
        )
        // Forward-only: a delivery receipt may already have overtaken this update.
        const updated =
          (await this.deps.messages.updateStatusByWaId(session.id, message.waId, 'sent', at, trx)) ??
          (await this.deps.messages.getById(session.id, message.id, trx))
        if (!updated) return []
        await this.deps.chats.upsertActivity(
          session.id,
          { jid: request.jid, messageId: message.id, at, addUnread: 0 },
          trx,
        )
        return this.deps.recorder.store(
          eventSession(session),
          [
            { type: 'message.sent', data: eventData(updated) },
            {
              type: 'message.status',
              data: { id: updated.id, waId: updated.waId, chatJid: updated.chatJid, status: 'sent' },
            },
          ],
          trx,
        )
      })
      this.deps.recorder.publish(events)
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      this.deps.logger.warn({ sessionId: session.id, messageId: message.id, reason }, 'send failed')
      const updated = await this.deps.messages.update(message.id, {
        status: 'failed',
        failureReason: reason,
        sendRequest: null,
        sendAfter: null,
      })
      await this.deps.recorder.record(eventSession(session), [
        {
          type: 'message.status',
          data: { id: updated.id, waId: updated.waId, chatJid: updated.chatJid, status: 'failed', reason },
        },
      ])
    }
    if ('path' in request) await rm(request.path, { force: true })
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now()
  }
}

export function eventData(message: MessageRecord) {
  const {
    sessionId: _sessionId,
    raw: _raw,
    sendRequest: _request,
    sendAfter: _after,
    failureReason: _reason,
    createdAt: _created,
    updatedAt: _updated,
    ...rest
  } = message
  return rest
}
