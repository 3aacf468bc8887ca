import { rm } from 'node:fs/promises'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
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
/** How soon a sender loop that failed (its store, say) or was cut off runs again, should nothing else wake it. */
const RETRY_AFTER_ERROR_MS = 5_000
/** Baileys' status codes for a connection that closed or was lost under a send. */
const CONNECTION_GONE = new Set([408, 428])
/** The socket's own errors when it breaks under a write. */
const SOCKET_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ENOTCONN', 'ETIMEDOUT'])

/**
 * How long a sent message WhatsApp's server has not acknowledged is sent again after a
 * reconnect: a drop can lose what was written to the socket but never arrived.
 */
const RESEND_UNACKNOWLEDGED_MS = 24 * 60 * 60_000

/** Cut off this many times on a connection that stayed up (a 408 of a query), a send counts as failed. */
const MAX_CUT_OFFS = 3
/** Acknowledged ids a connection remembers, for sends whose 'sent' commit came after their ack. */
const ACKS_REMEMBERED = 4096

/** How a send ended: sent, failed for good, or cut off by the connection (it stays queued). */
type SendOutcome = 'done' | 'interrupted'

/**
 * The durable outbound queue: pending message rows are the queue. Each session has at
 * most one sender loop; it sends due rows in order while the session is ready, sleeps until
 * the next paced send time, and stops when the session is not ready (a `ready` status
 * wakes it again). A restart resumes from the rows. A send the connection's loss cuts
 * off stays queued and goes after the reconnect; so does, again, one that was sent but not
 * acknowledged by WhatsApp's server before the connection went (its request is kept until
 * the acknowledgement) — under the same message id, which the recipient deduplicates should
 * the first one have arrived after all.
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
  /** sessions whose unacknowledged sends go again at the loop's next run (they reconnected) */
  private readonly resend = new Set<string>()
  /** per connection, the message ids its server acknowledged (the latest `ACKS_REMEMBERED`) */
  private readonly acked = new WeakMap<EngineConnection, Set<string>>()
  /** messages cut off on a connection that stayed up, and how often */
  private readonly cutOffs = new Map<string, number>()
  private stopped = false

  constructor(deps: OutboundQueue['deps']) {
    this.deps = deps
  }

  /** Listens to a new connection's acknowledgements: what the server has is not sent again. */
  attach(sessionId: string, connection: EngineConnection): void {
    let acked: string[] = []
    const remembered = new Set<string>()
    this.acked.set(connection, remembered)
    connection.events.on('message-acked', (waId) => {
      remembered.add(waId)
      if (remembered.size > ACKS_REMEMBERED) remembered.delete(remembered.values().next().value as string)
      acked.push(waId)
      if (acked.length > 1) return
      // The acknowledgements of one turn, together.
      setImmediate(() => {
        const waIds = acked
        acked = []
        void this.forget(sessionId, { waIds }).catch((err) =>
          this.deps.logger.warn({ err, sessionId }, 'storing acknowledgements failed'),
        )
      })
    })
  }

  /** The session is ready on a new connection: what the last one may have lost goes again, then the queue. */
  resumeAfterConnect(sessionId: string): void {
    this.resend.add(sessionId)
    this.wake(sessionId)
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
      .catch((err) => {
        this.deps.logger.error({ err, sessionId }, 'outbound queue failed; trying again shortly')
        this.sleep(sessionId, RETRY_AFTER_ERROR_MS)
      })
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
      if (this.resend.delete(sessionId)) {
        const done = await this.sendAgain(session, connection).catch((error: unknown) => {
          this.resend.add(sessionId)
          throw error
        })
        if (!done) {
          // The reconnect's `ready` wakes it; a timeout on a connection that stayed needs this.
          this.sleep(sessionId, RETRY_AFTER_ERROR_MS)
          return
        }
      }
      const now = this.now()
      const due = await this.deps.messages.claimDue(sessionId, now, BATCH)
      if (due.length === 0) {
        const next = await this.deps.messages.nextSendAfter(sessionId)
        if (next !== undefined) this.sleep(sessionId, next - now)
        return
      }
      for (const message of due) {
        // The session may have dropped, or reconnected, while the previous message was going out.
        if (!(await this.sendingOn(sessionId, connection))) return
        if ((await this.sendOne(session, connection, message)) === 'interrupted') {
          // The reconnect's `ready` wakes it; a timeout on a connection that stayed needs this.
          this.sleep(sessionId, RETRY_AFTER_ERROR_MS)
          return
        }
        // A send ends in microtasks alone: without a turn of the event loop between them, a
        // backlog of thousands held the API, timers, keep-alives and the receipts coming back
        // for seconds (4,000: 10 s). A turn after each, rather than each batch, also lets a
        // send reach the socket's other end before the next is written (bench/RESULTS.md).
        await yieldToEventLoop()
      }
    }
  }

  /** Whether the session is ready still, on the connection the loop started with. */
  private async sendingOn(sessionId: string, connection: EngineConnection): Promise<boolean> {
    if (this.stopped || this.deps.connection(sessionId) !== connection) return false
    return (await this.deps.session(sessionId))?.status === 'ready'
  }

  private sleep(sessionId: string, delayMs: number): void {
    // Stopped, nothing may hold the process open (a send cut off by the stop stays queued).
    if (this.stopped) return
    clearTimeout(this.timers.get(sessionId))
    this.timers.set(
      sessionId,
      setTimeout(() => this.wake(sessionId), Math.max(0, delayMs)),
    )
  }

  private async sendOne(
    session: SessionRecord,
    connection: EngineConnection,
    message: MessageRecord,
  ): Promise<SendOutcome> {
    const request = message.sendRequest as StoredSendRequest
    try {
      const sent = await transmit(connection, message.waId, request)
      const at = this.now()
      // The sent state, the chat's activity and their events: one transaction.
      const events = await this.deps.database.db.transaction().execute(async (trx) => {
        await this.deps.messages.update(
          message.id,
          // The request is kept until the server acknowledges the message (`attach`).
          { raw: encodeRaw(sent.message), sendAfter: null, timestamp: at },
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
      this.cutOffs.delete(message.id)
      // Its acknowledgement may have come before this commit, when there was nothing to forget.
      if (this.acked.get(connection)?.has(message.waId))
        await this.forget(session.id, { waIds: [message.waId] })
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      if (await this.cutOff(session.id, connection, message.id, error)) {
        this.deps.logger.info(
          { sessionId: session.id, messageId: message.id, reason },
          'send cut off by the connection; it stays queued',
        )
        return 'interrupted'
      }
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
      await removeMediaOf(request)
    }
    return 'done'
  }

  /**
   * Sends again, as they were, the messages sent on an earlier connection that the server
   * never acknowledged; no status or event changes (they were sent). Those older than a day
   * are let go. False when the connection went meanwhile (they wait for the next one).
   */
  private async sendAgain(session: SessionRecord, connection: EngineConnection): Promise<boolean> {
    const since = this.now() - RESEND_UNACKNOWLEDGED_MS
    await this.forget(session.id, { olderThan: since })
    for (const message of await this.deps.messages.listUnacknowledged(session.id, since)) {
      const request = message.sendRequest as StoredSendRequest
      // Edited or deleted for everyone since: its first content must not go out again.
      if (message.details?.['edited'] || message.details?.['deleted']) {
        await this.forget(session.id, { waIds: [message.waId] })
        continue
      }
      try {
        await transmit(connection, message.waId, request)
        this.deps.logger.info(
          { sessionId: session.id, messageId: message.id },
          'sent again: the server had not acknowledged it before the connection went',
        )
      } catch (error) {
        if (await this.cutOff(session.id, connection, message.id, error)) {
          this.resend.add(session.id)
          return false
        }
        const reason = error instanceof Error ? error.message : String(error)
        this.deps.logger.warn(
          { sessionId: session.id, messageId: message.id, reason },
          'sending again failed',
        )
        await this.forget(session.id, { waIds: [message.waId] })
      }
      await yieldToEventLoop()
    }
    return true
  }

  /** The kept requests of these messages are done with (acknowledged, or too old), and their media files. */
  private async forget(
    sessionId: string,
    which: { waIds: readonly string[] } | { olderThan: number },
  ): Promise<void> {
    for (const request of await this.deps.messages.takeSendRequests(sessionId, which)) {
      await removeMediaOf(request as StoredSendRequest)
    }
  }

  /**
   * Whether a send failed because its connection went: no longer the session's, or closed,
   * lost or reset under it. The latter on a connection that stayed up (a 408 is also a query
   * timing out) counts `MAX_CUT_OFFS` times per message, then the send has failed.
   */
  private async cutOff(
    sessionId: string,
    connection: EngineConnection,
    messageId: string,
    error: unknown,
  ): Promise<boolean> {
    if (!(await this.sendingOn(sessionId, connection))) return true
    const { output, code } = (error ?? {}) as { output?: { statusCode?: unknown }; code?: unknown }
    const gone =
      (typeof output?.statusCode === 'number' && CONNECTION_GONE.has(output.statusCode)) ||
      (typeof code === 'string' && SOCKET_GONE.has(code))
    if (!gone) return false
    const times = (this.cutOffs.get(messageId) ?? 0) + 1
    if (times >= MAX_CUT_OFFS) {
      this.cutOffs.delete(messageId)
      return false
    }
    this.cutOffs.set(messageId, times)
    return true
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now()
  }
}

/** Writes a stored send request to the connection under its message id (a first send, or again). */
async function transmit(connection: EngineConnection, waId: string, request: StoredSendRequest) {
  const content = await buildContent(request, decodeRaw)
  return connection.sendMessage(request.jid, content, {
    messageId: waId,
    ...(request.quoted ? { quoted: quotedMessage(request.quoted, decodeRaw) } : {}),
  })
}

/** A send's uploaded media, kept in a file until the message no longer needs sending. */
async function removeMediaOf(request: StoredSendRequest): Promise<void> {
  if ('path' in request) await rm(request.path, { force: true })
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
