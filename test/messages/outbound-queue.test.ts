import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import pino from 'pino'
import type { EngineConnection } from '../../src/engine/engine.ts'
import type { EventRecorder } from '../../src/events/event-recorder.ts'
import { OutboundQueue } from '../../src/messages/outbound-queue.ts'
import type { ChatsRepository } from '../../src/store/chats.repository.ts'
import { type Database, openDatabase } from '../../src/store/db.ts'
import { createOrganization, createSession, messageRecord, useStore } from '../store/fixtures.ts'
import { eventually } from '../support/wait.ts'

const dataDir = await mkdtemp(join(tmpdir(), 'wagate-queue-'))
after(() => rm(dataDir, { recursive: true, force: true }))

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The queue over a real SQLite store and a connection that only records what it is asked
 * to send: the races between WhatsApp's acknowledgements, the store and a connection that
 * times out, which the sandbox does not stage on demand.
 */
describe('the outbound queue, its acknowledgements and cut-off sends', () => {
  const context = useStore(() => openDatabase({ dataDir }))

  async function setup(options: {
    /** how long each transaction waits before it starts (a busy store) */
    transactionDelayMs?: number
    send: (connection: EngineConnection, text: string, waId: string) => Promise<void>
  }) {
    const { database, repositories } = context
    const session = {
      ...(await createSession(context, await createOrganization(context))),
      status: 'ready' as const,
    }
    const delayed = options.transactionDelayMs ?? 0
    const store = {
      ...database,
      db: new Proxy(database.db, {
        get(target, property) {
          if (property === 'transaction')
            return () => ({
              execute: async <T>(work: Parameters<ReturnType<typeof target.transaction>['execute']>[0]) => {
                await pause(delayed)
                return target.transaction().execute(work) as Promise<T>
              },
            })
          const value = Reflect.get(target, property)
          return typeof value === 'function' ? value.bind(target) : value
        },
      }),
    } as Database
    const sent: string[] = []
    const connection = {
      events: new EventEmitter(),
      sendMessage: async (_jid: string, content: { text?: string }, sendOptions: { messageId: string }) => {
        sent.push(content.text ?? '')
        await options.send(
          connection as unknown as EngineConnection,
          content.text ?? '',
          sendOptions.messageId,
        )
        return { message: { conversation: content.text } }
      },
    } as unknown as EngineConnection
    const queue = new OutboundQueue({
      database: store,
      messages: repositories.messages,
      chats: { upsertActivity: async () => {} } as unknown as ChatsRepository,
      recorder: { store: async () => [], publish() {}, record: async () => [] } as unknown as EventRecorder,
      logger: pino({ level: 'silent' }),
      session: async () => session,
      connection: () => connection,
    })
    queue.attach(session.id, connection)
    /** A text queued to Ann, due now. */
    const queueText = async (text: string) => {
      const now = Date.now()
      const message = messageRecord(session.id, {
        fromMe: true,
        senderJid: null,
        pushName: null,
        timestamp: now,
        text,
        status: 'pending',
        sendRequest: {
          kind: 'text',
          text,
          previewUrl: false,
          jid: '15550001111@s.whatsapp.net',
          mentions: [],
        },
        sendAfter: now,
        createdAt: now,
        updatedAt: now,
      })
      await repositories.messages.insertIfNew(message)
      return message.id
    }
    const row = async (id: string) => repositories.messages.getById(session.id, id)
    return { queue, session, sent, queueText, row, repositories }
  }

  it('forgets a send the server acknowledged before its sent state was stored, and sends it once', async () => {
    const setupDone = await setup({
      transactionDelayMs: 30,
      // The acknowledgement comes 5 ms after the send; storing the sent state takes 30.
      send: async (connection, _text, waId) => {
        setTimeout(() => connection.events.emit('message-acked', waId), 5)
      },
    })
    const { queue, session, sent, queueText, row } = setupDone
    const id = await queueText('hello')
    queue.wake(session.id)
    await eventually(async () => (await row(id))?.sendRequest === null, 'the acknowledgement applied', 2_000)
    assert.equal((await row(id))?.status, 'sent')
    // A reconnect sends nothing again.
    queue.resumeAfterConnect(session.id)
    await pause(200)
    queue.stop()
    assert.deepEqual(sent, ['hello'])
  })

  it('goes on with the queue when a send again times out on a connection that stays up', async () => {
    let timeOut = true
    const { queue, session, sent, queueText, row, repositories } = await setup({
      send: async (_connection, text) => {
        if (text === 'unacknowledged' && timeOut) {
          timeOut = false
          throw Object.assign(new Error('Timed Out'), { output: { statusCode: 408 } })
        }
      },
    })
    // Sent on an earlier connection and never acknowledged; then one queued.
    const unacknowledged = await queueText('unacknowledged')
    await repositories.messages.update(unacknowledged, { status: 'sent', sendAfter: null })
    const fresh = await queueText('fresh')
    queue.resumeAfterConnect(session.id)
    await eventually(async () => (await row(fresh))?.status === 'sent', 'the queued one sent', 10_000)
    queue.stop()
    assert.deepEqual(sent, ['unacknowledged', 'unacknowledged', 'fresh'])
  })

  it('fails a send cut off again and again on a connection that stays up, and goes on', async () => {
    const { queue, session, sent, queueText, row } = await setup({
      send: async (_connection, text) => {
        if (text === 'poison') throw Object.assign(new Error('Timed Out'), { output: { statusCode: 408 } })
      },
    })
    const poison = await queueText('poison')
    const after = await queueText('after it')
    queue.wake(session.id)
    await eventually(async () => (await row(after))?.status === 'sent', 'the one behind it sent', 20_000)
    queue.stop()
    assert.equal((await row(poison))?.status, 'failed')
    assert.deepEqual(sent, ['poison', 'poison', 'poison', 'after it'])
  })
})
