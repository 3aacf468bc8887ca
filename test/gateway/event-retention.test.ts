import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { newId } from '../../src/domain/ids.ts'
import { EventRetention, type EventRetentionOptions } from '../../src/events/event-retention.ts'
import { type Database, migrateToLatest, openDatabase } from '../../src/store/db.ts'
import { EventsRepository } from '../../src/store/events.repository.ts'
import { WebhookDeliveriesRepository } from '../../src/store/webhook-deliveries.repository.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { eventually } from '../support/wait.ts'
import { Receiver } from '../webhooks/receiver.ts'

const HOUR = 3_600_000

interface Envelope {
  id: string
  type: string
  session: { id: string } | null
  timestamp: string
}

describe('event retention', () => {
  describe('through the API', () => {
    let gateway: TestGateway
    let receiver: Receiver
    let base: string
    /** how far the retention clock runs ahead of the wall clock */
    let ahead = 0

    before(async () => {
      receiver = await Receiver.start()
      // The receiver is down for good: every delivery to it stays pending, retrying.
      receiver.respond = () => 503
      gateway = await startTestGateway({
        environment: { EVENT_RETENTION_HOURS: '24' },
        tuning: { retentionClock: () => Date.now() + ahead },
      })
      base = await gateway.app.listen()
    })
    after(async () => {
      await gateway.close()
      await receiver.stop()
    })

    const listEvents = async (query: string): Promise<Envelope[]> => {
      const response = await gateway.request('GET', `/api/v1/events?limit=500&${query}`)
      assert.equal(response.statusCode, 200, response.body)
      return response.json().items
    }

    /** A session that went through a few statuses; its status events owe a webhook delivery. */
    async function sessionWithHistory(name: string): Promise<string> {
      const created = await gateway.request('POST', '/api/v1/sessions', {
        body: { name, sandbox: true, start: true },
      })
      assert.equal(created.statusCode, 201, created.body)
      const id = created.json().id as string
      await eventually(
        async () => (await listEvents(`session=${id}&types=session.qr`)).length > 0,
        'a QR event',
      )
      await gateway.request('POST', `/api/v1/sessions/${id}/stop`)
      await eventually(
        async () => (await gateway.request('GET', `/api/v1/sessions/${id}`)).json().status === 'stopped',
        'the session to stop',
      )
      return id
    }

    function openStream(query: string) {
      const socket = new WebSocket(`${base.replace('http', 'ws')}/api/v1/events/stream${query}`, {
        headers: { 'x-api-key': gateway.adminKey },
      })
      const received: Envelope[] = []
      socket.on('message', (data) => received.push(JSON.parse(String(data))))
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
      )
      return { socket, received, closed }
    }

    let sessionId: string
    /** what the log held before the prune: the cursors that are gone after it */
    let beforePrune: Envelope[] = []
    it('lists events in a time range: since inclusive, until exclusive', async () => {
      const receiverHook = await gateway.request('POST', '/api/v1/webhooks', {
        body: { url: receiver.url(), events: ['session.status'], retries: { attempts: 50 } },
      })
      assert.equal(receiverHook.statusCode, 201, receiverHook.body)
      sessionId = await sessionWithHistory('kept-and-pruned')
      const all = await listEvents(`session=${sessionId}`)
      assert.ok(all.length >= 3, 'a few events to split')
      const middle = all[Math.floor(all.length / 2)]?.timestamp as string
      const since = await listEvents(`session=${sessionId}&since=${encodeURIComponent(middle)}`)
      const until = await listEvents(`session=${sessionId}&until=${encodeURIComponent(middle)}`)
      assert.ok(since.every((e) => e.timestamp >= middle))
      assert.ok(until.every((e) => e.timestamp < middle))
      assert.deepEqual(
        [...since, ...until].map((e) => e.id).sort(),
        all.map((e) => e.id).sort(),
        'the two halves are the whole',
      )
    })

    it('resumes after an event inside the window', async () => {
      const [oldest] = (await listEvents(`session=${sessionId}`)).reverse()
      assert.ok(oldest)
      const stream = openStream(`?after=${oldest.id}&sessions=${sessionId}`)
      await eventually(() => stream.received.length > 0, 'the replay')
      stream.socket.close()
    })

    it('prunes events older than the window, but keeps those a webhook delivery still owes', async () => {
      beforePrune = await listEvents(`session=${sessionId}`)
      assert.ok(beforePrune.some((e) => e.type === 'session.qr'))
      ahead = 25 * HOUR
      const pruned = await gateway.app.eventRetention.runOnce()
      assert.ok(pruned.events > 0)
      const kept = await listEvents(`session=${sessionId}`)
      assert.ok(kept.length > 0, 'the owed status events are kept')
      assert.ok(
        kept.every((e) => e.type === 'session.status'),
        `only events a delivery owes remain: ${kept.map((e) => e.type)}`,
      )
    })

    it('refuses to resume after a pruned event, naming the cursor as expired (WebSocket and SSE)', async () => {
      const prunedId = beforePrune.find((e) => e.type === 'session.qr')?.id
      assert.ok(prunedId)
      assert.deepEqual(await listEvents('types=session.qr'), [], 'every QR event was pruned')
      const stream = openStream(`?after=${prunedId}`)
      const { code, reason } = await stream.closed
      assert.equal(code, 1008)
      assert.match(reason, /^after: cursor evt_\w+ expired/)
      // Cut to fit a close frame at a word, and said to be cut.
      assert.ok(Buffer.byteLength(reason) <= 123)
      assert.match(reason, /\w…$/)

      const response = await fetch(`${base}/api/v1/events/stream?after=${prunedId}`, {
        headers: { 'x-api-key': gateway.adminKey, accept: 'text/event-stream' },
      })
      // Answered before the stream begins: an EventSource would reconnect after an ended stream.
      assert.equal(response.status, 400)
      const { error } = (await response.json()) as { error: { message: string } }
      assert.match(error.message, /cursor evt_\w+ expired \(not in the event log/)
      assert.match(error.message, /catch up from GET \/api\/v1\/events/)
    })

    it('refuses to resume after a kept event older than the window, since what followed it may be gone', async () => {
      const [owed] = await listEvents(`session=${sessionId}`)
      assert.ok(owed, 'an event a delivery still owes')
      const stream = openStream(`?after=${owed.id}`)
      const { code, reason } = await stream.closed
      assert.equal(code, 1008)
      assert.match(reason, /expired \(older than the retention window/)
      assert.equal(stream.received.length, 0, 'nothing is replayed')
    })
  })

  describe('the background pruner', () => {
    let dataDir: string
    let database: Database
    let events: EventsRepository
    const organizationId = newId('organization')
    const now = 1_700_000_000_000

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'wagate-retention-'))
      database = await openDatabase({ dataDir })
      await migrateToLatest(database)
      events = new EventsRepository(database.db)
    })
    after(async () => {
      await database.close()
      await rm(dataDir, { recursive: true, force: true })
    })

    /** `count` events a day old, against a one-hour window. */
    async function storeOldEvents(count: number): Promise<void> {
      await events.append(
        Array.from({ length: count }, (_, i) => ({
          id: newId('event'),
          organizationId,
          sessionId: null,
          type: 'session.status',
          payload: { session: null, data: {} },
          createdAt: now - 24 * HOUR + i,
        })),
      )
    }
    const stored = async () => (await events.list(organizationId, { limit: 100 })).length

    /** A pruner over the real store whose passes are counted as they start. */
    function pruner(overrides: Partial<EventRetentionOptions> = {}) {
      const counter = { passes: 0 }
      const retention = new EventRetention({
        database,
        events: {
          nextOrganizationId: (afterId) => {
            if (afterId === undefined) counter.passes++
            return events.nextOrganizationId(afterId)
          },
          listCreatedBefore: (...args) => events.listCreatedBefore(...args),
          deleteUnowed: (...args) => events.deleteUnowed(...args),
        },
        deliveries: new WebhookDeliveriesRepository(database.db, database.dialect),
        retentionHours: 1,
        now: () => now,
        ...overrides,
      })
      return { retention, counter }
    }
    /** Lets the timer callback's promise chain (and the next schedule) run. */
    const flush = () => new Promise((resolve) => setImmediate(resolve))

    it('runs its first pass after the delay, then one per interval, and none once stopped', async (t) => {
      t.mock.timers.enable({ apis: ['setTimeout'] })
      const { retention, counter } = pruner({ firstPassDelayMs: 1_000, intervalMs: 10_000 })
      await storeOldEvents(3)
      retention.start()
      t.mock.timers.tick(999)
      assert.equal(counter.passes, 0, 'not before the first delay')
      t.mock.timers.tick(1)
      assert.equal(counter.passes, 1)
      await retention.runOnce()
      assert.equal(counter.passes, 1, 'runOnce joins the pass in progress')
      assert.equal(await stored(), 0)
      await flush()

      await storeOldEvents(2)
      t.mock.timers.tick(9_999)
      assert.equal(counter.passes, 1, 'the interval counts from the end of a pass')
      t.mock.timers.tick(1)
      assert.equal(counter.passes, 2)
      await retention.runOnce()
      assert.equal(await stored(), 0)
      await flush()

      await retention.stop()
      await storeOldEvents(1)
      t.mock.timers.tick(100_000)
      assert.equal(counter.passes, 2, 'no pass after stop()')
      assert.equal(await stored(), 1)
      await events.deleteUnowed((await events.list(organizationId, { limit: 10 })).map((e) => e.id))
    })

    it('never keeps the process alive while it waits', async () => {
      const timers = () => process.getActiveResourcesInfo().filter((type) => type === 'Timeout').length
      const { retention } = pruner({ firstPassDelayMs: 60_000 })
      const before = timers()
      retention.start()
      assert.equal(timers(), before, "the timer is unref'd")
      await retention.stop()
    })

    it('stops between batches: a closing app waits for one batch, not the whole backlog', async () => {
      await storeOldEvents(5)
      const { retention } = pruner({ batchSize: 1 })
      const pass = retention.runOnce()
      await retention.stop()
      await pass
      assert.ok((await stored()) >= 4, 'at most the batch in progress was deleted')
      await events.deleteUnowed((await events.list(organizationId, { limit: 10 })).map((e) => e.id))
    })

    it('does nothing, and schedules nothing, when events are kept forever', async (t) => {
      t.mock.timers.enable({ apis: ['setTimeout'] })
      await storeOldEvents(1)
      const { retention, counter } = pruner({ retentionHours: 0, firstPassDelayMs: 0 })
      retention.start()
      t.mock.timers.tick(1_000_000)
      assert.deepEqual(await retention.runOnce(), { events: 0, deliveries: 0 })
      assert.equal(counter.passes, 0)
      assert.equal(await stored(), 1)
    })
  })
})
