import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, afterEach, before, beforeEach, describe, it } from 'node:test'
import pino from 'pino'
import { newId } from '../../src/domain/ids.ts'
import { type DomainEvent, wireBody } from '../../src/events/catalogue.ts'
import { EventBus } from '../../src/events/event-bus.ts'
import { EventRecorder } from '../../src/events/event-recorder.ts'
import { EventsRepository } from '../../src/store/events.repository.ts'
import { eventually } from '../support/wait.ts'
import { type Harness, newSession, openHarness, sessionWebhooks } from './harness.ts'
import { Receiver, type Reply } from './receiver.ts'

describe('webhook delivery', () => {
  let harness: Harness
  let receiver: Receiver

  beforeEach(async () => {
    harness = await openHarness({ circuit: { failureThreshold: 3, cooldownMs: 10_000 } })
    receiver = await Receiver.start()
  })
  afterEach(async () => {
    await harness.close()
    await receiver.stop()
  })

  const statuses = async () => (await harness.rows()).map((row) => row.status)
  const idsReceived = () => receiver.events().map((event) => event.id)

  it('delivers every event piled up while the receiver was down once it is back, none twice', async () => {
    await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 2, attempts: 10 },
    })
    await receiver.stop()
    const session = newSession()
    const emitted: DomainEvent[] = []
    for (let i = 0; i < 20; i++)
      emitted.push(await harness.emit('message.received', { session, data: { i } }))

    assert.equal(await harness.module.worker.runOnce(), 20)
    const down = await harness.rows()
    assert.ok(down.every((row) => row.status === 'pending' && row.attempts <= 1))
    assert.match(down[0]?.last_error ?? '', /ECONNREFUSED/)
    // Once the first failure came back, the rest waited for the worker's word; the fifth opened
    // the circuit and they came back untried: the receiver was not hammered with all twenty.
    const tried = down.filter((row) => row.attempts === 1).length
    assert.ok(tried >= 5 && tried < 20, `${tried} tried`)

    // The failures opened the circuit: the first tries after the receiver is back wait for its probe.
    await receiver.listen()
    for (let round = 0; round < 20 && (await statuses()).includes('pending'); round++) {
      harness.clock.advance(2_000)
      await harness.module.worker.runOnce()
    }

    assert.deepEqual(new Set(await statuses()), new Set(['delivered']))
    assert.deepEqual(idsReceived().sort(), emitted.map((event) => event.id).sort(), 'each event exactly once')
    const [first] = await harness.rows()
    const attempts = await harness.attempts(first!.id)
    assert.deepEqual(
      attempts.map((a) => [a.number, a.statusCode]),
      [
        [1, null],
        [2, 200],
      ],
    )
  })

  it('delivers a burst with the running worker, each event once, and stops cleanly', async () => {
    const module = harness.module
    await harness.createWebhook({ url: receiver.url() })
    receiver.respond = () => ({ status: 204, delayMs: 5 })
    const session = newSession()
    for (let i = 0; i < 60; i++) await harness.emit('message.received', { session, data: { i } })
    module.worker.start()
    module.worker.wake()
    await eventually(() => receiver.requests.length >= 60, '60 deliveries')
    await module.worker.stop()
    assert.equal(new Set(idsReceived()).size, 60)
    assert.equal(receiver.requests.length, 60, 'none twice')
    assert.ok(receiver.maxActive > 1, 'unordered deliveries go in parallel')
  })

  it('retries a delivery whose worker died mid-request once its lease expires', async () => {
    await harness.createWebhook({ url: receiver.url() })
    const event = await harness.emit('session.status', { session: newSession() })
    // A worker claims it, then "crashes" without recording anything.
    const [lost] = await harness.module.deliveries.claimDue({
      now: harness.clock.now(),
      limit: 10,
      leaseMs: 60_000,
      token: randomUUID(),
      blockedKeys: [],
    })
    assert.ok(lost)
    assert.equal(await harness.module.worker.runOnce(), 0, 'the lease is respected')
    harness.clock.advance(60_000)
    assert.equal(await harness.module.worker.runOnce(), 1)
    assert.deepEqual(idsReceived(), [event.id])
    assert.deepEqual(await statuses(), ['delivered'])
  })

  it('opens the circuit after consecutive failures, probes after the cooldown and recovers', async () => {
    await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 50 },
    })
    receiver.respond = () => 500
    const session = newSession()
    for (let i = 0; i < 3; i++) await harness.emit('message.received', { session })
    await harness.module.worker.runOnce()
    assert.equal(receiver.requests.length, 3)

    // Open: due again after 1 s, but nothing is sent during the cooldown.
    for (let i = 0; i < 5; i++) {
      harness.clock.advance(1_000)
      assert.equal(await harness.module.worker.runOnce(), 0)
    }
    assert.equal(receiver.requests.length, 3, 'an open circuit sends nothing')

    // Half-open: exactly one probe; it fails, so the circuit opens again, for twice as long.
    harness.clock.advance(5_000)
    assert.equal(await harness.module.worker.runOnce(), 1)
    assert.equal(receiver.requests.length, 4)
    harness.clock.advance(1_000)
    assert.equal(await harness.module.worker.runOnce(), 0)
    harness.clock.advance(10_000)
    assert.equal(await harness.module.worker.runOnce(), 0, 'a cooldown of 20 s after a failed probe')

    // The receiver recovers: the next probe succeeds, the circuit closes, the rest follow.
    receiver.respond = () => 200
    harness.clock.advance(10_000)
    assert.equal(await harness.module.worker.runOnce(), 1, 'one probe')
    assert.equal(await harness.module.worker.runOnce(), 2, 'then everything due')
    assert.deepEqual(await statuses(), ['delivered', 'delivered', 'delivered'])
    const rows = await harness.rows()
    assert.ok(
      rows.every((row) => row.attempts <= 3),
      'the open circuit did not spend the retry budget',
    )
  })

  it('disables the webhook when the receiver answers 410 Gone', async () => {
    const webhook = await harness.createWebhook({ url: receiver.url() })
    receiver.respond = () => 410
    const session = newSession()
    await harness.emit('message.received', { session })
    await harness.emit('message.received', { session })
    assert.equal(await harness.module.worker.runOnce(), 2)

    const stored = await harness.module.service.get(harness.organizationId, webhook.id)
    assert.equal(stored.enabled, false)
    assert.match(stored.disabledReason ?? '', /410/)
    assert.deepEqual(await statuses(), ['dead', 'dead'])
    await harness.emit('message.received', { session })
    assert.equal((await harness.rows()).length, 2, 'a disabled webhook gets no new deliveries')
  })

  it('sends nothing more to a session webhook that answered 410 Gone, for ten minutes', async () => {
    receiver.respond = () => 410
    const session = newSession()
    const hooks = sessionWebhooks(harness.secretBox, [{ url: receiver.url() }])
    const emit = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        await harness.emit('message.received', { session, sessionWebhooks: hooks, data: { i } })
      }
    }
    const allDead = async (count: number) => {
      const rows = await harness.rows()
      return rows.length === count && rows.every((row) => row.status === 'dead')
    }
    harness.module.worker.start()
    await emit(0, 5)
    await eventually(() => allDead(5), 'the first five given up')
    // Those on the wire before the first 410 came back were sent; nothing after it.
    const tried = receiver.requests.length
    assert.ok(tried >= 1 && tried <= 5, `${tried} tried`)
    await emit(5, 5)
    await eventually(() => allDead(10), 'the next five given up')
    assert.equal(receiver.requests.length, tried, 'none sent after the 410')
    const rows = await harness.rows()
    assert.match(rows[9]?.last_error ?? '', /410 Gone; nothing is sent to this session webhook/)
    // Ten minutes on, it is tried again: the receiver may be back.
    receiver.respond = () => 200
    harness.clock.advance(10 * 60_000)
    await emit(10, 1)
    await eventually(async () => (await harness.rows())[10]?.status === 'delivered', 'tried again')
    await harness.module.worker.stop()
  })

  it("takes a replay of a session webhook's deliveries as the 410 answered: they go at once", async () => {
    receiver.respond = () => 410
    const session = newSession()
    const [hook] = sessionWebhooks(harness.secretBox, [{ url: receiver.url() }])
    await harness.emit('message.received', { session, sessionWebhooks: [hook!] })
    await harness.emit('message.received', { session, sessionWebhooks: [hook!] })
    await harness.module.worker.runOnce()
    assert.deepEqual(
      (await harness.rows()).map((row) => row.status),
      ['dead', 'dead'],
    )
    receiver.respond = () => 200
    const config = { id: session.id, webhooks: [hook!] }
    const { deliveryLog, worker } = harness.module
    const [first] = await harness.rows()
    await deliveryLog.retrySessionDelivery(harness.organizationId, config, first!.id)
    assert.equal(await worker.runOnce(), 1)
    assert.deepEqual(
      await deliveryLog.retrySessionDeadDeliveries(harness.organizationId, config, { since: 0 }),
      {
        retried: 1,
        skipped: 0,
      },
    )
    assert.equal(await worker.runOnce(), 1)
    assert.deepEqual(
      (await harness.rows()).map((row) => row.status),
      ['delivered', 'delivered'],
      'sent, not given up for the ten minutes a 410 otherwise keeps it quiet',
    )
  })

  it('says in its log why a delivery died', async () => {
    const lines: string[] = []
    await harness.close()
    harness = await openHarness({
      circuit: { failureThreshold: 3, cooldownMs: 10_000 },
      logger: pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }),
    })
    await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 1 },
    })
    receiver.respond = () => 503
    await harness.emit('message.received', { session: newSession() })
    await harness.module.worker.runOnce()
    const dead = lines
      .map((line) => JSON.parse(line))
      .find((entry) => entry.msg === 'webhook delivery is dead')
    assert.ok(dead, lines.join(''))
    assert.equal(dead.lastError, 'HTTP 503')
    assert.equal(dead.attempts, 1)
  })

  it('parks an exhausted delivery as dead and replays it with a fresh budget', async () => {
    const webhook = await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 2 },
    })
    receiver.respond = () => 502
    const event = await harness.emit('message.received', { session: newSession() })
    await harness.module.worker.runOnce()
    harness.clock.advance(1_000)
    await harness.module.worker.runOnce()
    const [dead] = await harness.rows()
    assert.equal(dead?.status, 'dead')

    receiver.respond = () => 200
    const replayed = await harness.module.deliveryLog.retryDelivery(
      harness.organizationId,
      webhook.id,
      dead.id,
    )
    assert.equal(replayed.status, 'pending')
    assert.equal(await harness.module.worker.runOnce(), 1)
    const { delivery, attempts } = await harness.module.deliveryLog.getDelivery(
      harness.organizationId,
      webhook.id,
      dead.id,
    )
    assert.equal(delivery.status, 'delivered')
    assert.deepEqual(
      attempts.map((a) => a.statusCode),
      [502, 502, 200],
    )
    assert.deepEqual(idsReceived(), [event.id, event.id, event.id])
  })

  it('replays, after an outage, every dead delivery created in a range, and only those', async () => {
    const webhook = await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 1 },
    })
    receiver.respond = () => 503
    const session = newSession()
    const early = [
      await harness.emit('message.received', { session }),
      await harness.emit('message.received', { session }),
    ]
    await harness.module.worker.runOnce()
    harness.clock.advance(60_000)
    const since = harness.clock.now()
    const late = await harness.emitMany('message.received', 3, { session })
    await harness.module.worker.runOnce()
    assert.ok((await harness.rows()).every((row) => row.status === 'dead'))

    receiver.respond = () => 200
    const { service, deliveryLog, worker } = harness.module
    // The failures opened the circuit: its probe goes first once it cools down, then the rest.
    const drain = async () => {
      harness.clock.advance(10_000)
      let sent = 0
      for (let round = 0; round < 4; round++) sent += await worker.runOnce()
      return sent
    }
    assert.deepEqual(await deliveryLog.retryDeadDeliveries(harness.organizationId, webhook.id, { since }), {
      retried: 3,
    })
    // They say when they will be tried: when the open circuit lets its probe through, not now.
    const replayed = (await harness.rows()).filter((row) => row.status === 'pending')
    const probeAt = worker.heldBackUntil(replayed[0]!.endpoint_key, harness.clock.now())
    assert.ok(probeAt !== undefined && probeAt > harness.clock.now(), 'the circuit is open')
    assert.deepEqual(
      replayed.map((row) => Number(row.next_attempt_at)),
      [probeAt, probeAt, probeAt],
    )
    assert.equal(await drain(), 3)
    assert.deepEqual(
      (await harness.rows()).map((row) => row.status),
      ['dead', 'dead', 'delivered', 'delivered', 'delivered'],
    )
    assert.deepEqual(idsReceived().slice(-3).sort(), late.map((event) => event.id).sort())
    // One more dies later on, outside the next range.
    receiver.respond = () => 503
    harness.clock.advance(60_000)
    const newest = await harness.emit('message.received', { session })
    await drain()
    receiver.respond = () => 200
    // Those created before `since`, once asked for; a disabled webhook first has to be enabled.
    const before = { since: 0, until: since }
    await service.update(harness.organizationId, webhook.id, { enabled: false })
    await assert.rejects(
      deliveryLog.retryDeadDeliveries(harness.organizationId, webhook.id, before),
      /disabled/,
    )
    await service.update(harness.organizationId, webhook.id, { enabled: true })
    assert.deepEqual(await deliveryLog.retryDeadDeliveries(harness.organizationId, webhook.id, before), {
      retried: 2,
    })
    assert.equal(await drain(), 2)
    assert.deepEqual(idsReceived().slice(-2).sort(), early.map((event) => event.id).sort())
    const statuses = new Map((await harness.rows()).map((row) => [row.event_id, row.status]))
    assert.equal(statuses.get(newest.id), 'dead', 'created after the range: left alone')
  })

  it('delivers ordered endpoints one at a time per session, oldest first, waiting on a failing head', async () => {
    await harness.createWebhook({
      url: receiver.url(),
      ordered: true,
      retries: { policy: 'constant', delaySeconds: 1, attempts: 5 },
    })
    const a = newSession('a')
    const b = newSession('b')
    const sent: DomainEvent[] = []
    for (let i = 0; i < 4; i++) sent.push(await harness.emit('message.received', { session: a, data: { i } }))
    const fromB = await harness.emit('message.received', { session: b })
    let failFirst = true
    receiver.respond = (request) => {
      if (failFirst && request.body.includes(sent[0]!.id)) {
        failFirst = false
        return 500
      }
      return 200
    }

    assert.equal(await harness.module.worker.runOnce(), 2, "one head per session's queue")
    assert.equal(await harness.module.worker.runOnce(), 0, 'the failed head blocks its queue until due')
    for (let i = 0; i < 6; i++) {
      harness.clock.advance(1_000)
      await harness.module.worker.runOnce()
    }
    const ofA = receiver
      .events()
      .filter((event) => event.session?.id === a.id)
      .map((event) => event.id)
    assert.deepEqual(
      ofA,
      [sent[0]!.id, ...sent.map((event) => event.id)],
      'oldest first, the head retried first',
    )
    assert.ok(idsReceived().includes(fromB.id), "another session's queue was not held up")
  })

  it('never has two deliveries of one ordered queue in flight with the running worker', async () => {
    await harness.createWebhook({ url: receiver.url(), ordered: true })
    receiver.respond = () => ({ status: 200, delayMs: 10 })
    const session = newSession()
    const sent: DomainEvent[] = []
    for (let i = 0; i < 15; i++) sent.push(await harness.emit('message.received', { session, data: { i } }))
    harness.module.worker.start()
    await eventually(() => receiver.requests.length === 15, '15 ordered deliveries')
    await harness.module.worker.stop()
    assert.equal(receiver.maxActive, 1)
    assert.deepEqual(
      idsReceived(),
      sent.map((event) => event.id),
    )
  })

  it('sends custom headers, and ours win over a session webhook that tries to override them', async () => {
    await harness.createWebhook({
      url: receiver.url('/org'),
      customHeaders: [{ name: 'X-Tenant', value: 'acme' }],
    })
    const [sessionWebhook] = sessionWebhooks(harness.secretBox, [
      {
        url: receiver.url('/session'),
        customHeaders: [
          { name: 'Authorization', value: 'Bearer receiver-token' },
          { name: 'Content-Type', value: 'text/plain' },
          { name: 'Webhook-Id', value: 'forged' },
        ],
      },
    ])
    const event = await harness.emit('message.received', {
      session: newSession(),
      sessionWebhooks: [sessionWebhook!],
    })
    assert.equal(await harness.module.worker.runOnce(), 2)
    const byPath = new Map(receiver.requests.map((request) => [request.path, request.headers]))
    assert.equal(byPath.get('/org')?.['x-tenant'], 'acme')
    const sessionHeaders = byPath.get('/session')
    assert.equal(sessionHeaders?.authorization, 'Bearer receiver-token')
    assert.equal(sessionHeaders?.['content-type'], 'application/json')
    assert.equal(sessionHeaders?.['webhook-id'], event.id)
    assert.match(String(sessionHeaders?.['user-agent']), /^wagate-webhooks\//)
  })

  it('does not follow redirects: a 3xx is a failed attempt', async () => {
    const other = await Receiver.start()
    try {
      await harness.createWebhook({ url: receiver.url() })
      receiver.respond = () => ({ status: 307, headers: { location: other.url() } })
      await harness.emit('message.received', { session: newSession() })
      await harness.module.worker.runOnce()
      assert.equal(other.requests.length, 0)
      const [row] = await harness.rows()
      assert.equal(row?.status, 'pending')
      assert.equal(row?.last_status_code, 307)
    } finally {
      await other.stop()
    }
  })

  it('gives up queued deliveries of a webhook disabled meanwhile, and records why', async () => {
    const webhook = await harness.createWebhook({ url: receiver.url() })
    await harness.emit('message.received', { session: newSession() })
    await harness.module.service.update(harness.organizationId, webhook.id, { enabled: false })
    assert.equal(await harness.module.worker.runOnce(), 1)
    const [row] = await harness.rows()
    assert.equal(row?.status, 'dead')
    assert.match(row?.last_error ?? '', /disabled/)
    assert.equal(receiver.requests.length, 0)
  })
})

describe('webhook delivery behind an open circuit', () => {
  let harness: Harness
  let receiver: Receiver

  beforeEach(async () => {
    receiver = await Receiver.start()
  })
  afterEach(async () => {
    await harness.close()
    await receiver.stop()
  })

  /** A circuit that opens at the first failure and lets a probe through after 10 s. */
  const open = async ({ concurrency, maxCooldownMs }: { concurrency: number; maxCooldownMs?: number }) => {
    harness = await openHarness({
      concurrency,
      circuit: { failureThreshold: 1, cooldownMs: 10_000, ...(maxCooldownMs ? { maxCooldownMs } : {}) },
    })
  }
  const statuses = async () => (await harness.rows()).map((row) => row.status)
  const idsReceived = () => receiver.events().map((event) => event.id)

  it('moves the deliveries behind an open circuit out of the claims’ way until it lets a probe through', async () => {
    await open({ concurrency: 1 })
    await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 50 },
    })
    receiver.respond = () => 500
    const session = newSession()
    const emitted: DomainEvent[] = []
    for (let i = 0; i < 30; i++)
      emitted.push(await harness.emit('message.received', { session, data: { i } }))
    const start = harness.clock.now()
    const dueTimes = async () => (await harness.rows()).map((row) => row.next_attempt_at - start)

    // One try fails and opens the circuit: its retry and the 29 untried are due when it lets a probe through.
    assert.equal(await harness.module.worker.runOnce(), 1)
    assert.deepEqual(await dueTimes(), Array(30).fill(10_000))
    // So is one enqueued while it is open.
    emitted.push(await harness.emit('message.received', { session, data: { i: 30 } }))
    assert.equal((await dueTimes())[30], 10_000)

    // The probe (the oldest) fails: open for twice as long, and everything moves again.
    harness.clock.advance(10_000)
    assert.equal(await harness.module.worker.runOnce(), 1)
    assert.deepEqual(await dueTimes(), Array(31).fill(30_000))

    receiver.respond = () => 200
    harness.clock.advance(20_000)
    for (let round = 0; round < 40 && (await statuses()).includes('pending'); round++) {
      await harness.module.worker.runOnce()
    }
    assert.deepEqual(new Set(await statuses()), new Set(['delivered']))
    assert.deepEqual(idsReceived().slice(-31).sort(), emitted.map((event) => event.id).sort())
    assert.equal(receiver.requests.length, 33, 'two failed tries, then each once')
  })

  it('brings deliveries moved behind an opened circuit forward when a late success closes it', async () => {
    await open({ concurrency: 2 })
    await harness.createWebhook({ url: receiver.url() })
    // The first request answers fine, but late: after the second has failed and opened the circuit.
    receiver.respond = (request) =>
      JSON.parse(request.body).data.i === 0
        ? { status: 200, delayMs: 300 }
        : request.body.includes('"i":1}')
          ? 500
          : 200
    const session = newSession()
    for (let i = 0; i < 10; i++) await harness.emit('message.received', { session, data: { i } })
    const start = harness.clock.now()
    assert.equal(await harness.module.worker.runOnce(), 2)
    const rows = await harness.rows()
    assert.deepEqual(
      rows.map((row) => row.status),
      ['delivered', 'pending', ...Array(8).fill('pending')],
    )
    assert.deepEqual(
      rows.slice(2).map((row) => row.next_attempt_at - start),
      Array(8).fill(0),
      'due again at once, not when the circuit would have let a probe through',
    )
    assert.equal(harness.module.worker.breaker.state(rows[0]?.endpoint_key ?? '', start), 'closed')
  })

  it('sends what an opened circuit held back at once when a late success closes it, the worker running', async () => {
    await open({ concurrency: 2 })
    // The second fails and opens the circuit; the first answers fine just after it, whatever the timing.
    let answerFirst: (() => void) | undefined
    const server = createServer((request, response) => {
      let body = ''
      request.on('data', (chunk: Buffer) => {
        body += chunk
      })
      request.on('end', () => {
        const { i } = JSON.parse(body).data
        if (i === 0) answerFirst = () => response.writeHead(200).end()
        else if (i === 1) {
          response.writeHead(500).end()
          const first = answerFirst
          answerFirst = undefined
          setTimeout(() => first?.(), 2)
        } else response.writeHead(200).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      await harness.createWebhook({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` })
      harness.module.worker.start()
      await harness.emitMany('message.received', 10, { session: newSession(), data: (i) => ({ i }) })
      // The rest — handed back from the HTTP client, or moved in the store — went out at once.
      await eventually(
        async () => (await harness.rows()).slice(2).every((row) => row.status === 'delivered'),
        'the eight others delivered',
        3_000,
      )
      await harness.module.worker.stop()
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  it('gives up the deliveries an open circuit kept from their tries longer than their retry schedule lasts', async () => {
    await open({ concurrency: 1, maxCooldownMs: 10_000 })
    await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 5 },
    })
    receiver.respond = () => 500
    const session = newSession()
    for (let i = 0; i < 5; i++) await harness.emit('message.received', { session, data: { i } })
    // One try fails and opens the circuit; then a probe every 10 s (its longest cooldown), failing.
    assert.equal(await harness.module.worker.runOnce(), 1)
    harness.clock.advance(10_000)
    assert.equal(await harness.module.worker.runOnce(), 1)
    assert.deepEqual(await statuses(), Array(5).fill('pending'), 'open for 10 s: not longer than it waits')

    // Open for 20 s now, longer than the schedule's 4 s of waits and than a cooldown: the four
    // untried, kept from their tries all that while, are given up.
    harness.clock.advance(10_000)
    assert.equal(await harness.module.worker.runOnce(), 1)
    const rows = await harness.rows()
    assert.deepEqual(
      rows.map((row) => [row.status, row.attempts]),
      [['pending', 3], ...Array(4).fill(['dead', 0])],
    )
    assert.match(rows[1]?.last_error ?? '', /unreachable .*longer than the retry schedule lasts \(10 s\)/)
    assert.equal(receiver.requests.length, 3)
  })

  it('gives up nothing when the circuit has only just opened, however old the deliveries', async () => {
    await open({ concurrency: 1 })
    await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 1 },
    })
    receiver.respond = () => 503
    const session = newSession()
    for (let i = 0; i < 5; i++) await harness.emit('message.received', { session, data: { i } })
    // Recorded five hours ago, while the worker was down: their one try is still to come.
    harness.clock.advance(5 * 3_600_000)
    assert.equal(await harness.module.worker.runOnce(), 1)
    const rows = await harness.rows()
    assert.deepEqual(
      rows.map((row) => [row.status, row.attempts]),
      [['dead', 1], ...Array(4).fill(['pending', 0])],
    )
  })
})

describe('webhook delivery timeouts', () => {
  let harness: Harness
  let receiver: Receiver

  beforeEach(async () => {
    harness = await openHarness({ requestTimeoutMs: 200 })
    receiver = await Receiver.start()
  })
  afterEach(async () => {
    await harness.close()
    await receiver.stop()
  })

  /** One attempt against a receiver answering `reply`: it must fail as timed out, taking under `maxMs`. */
  const expectTimedOut = async (reply: Reply, maxMs: number) => {
    await harness.createWebhook({ url: receiver.url() })
    receiver.respond = () => reply
    await harness.emit('message.received', { session: newSession() })
    await harness.module.worker.runOnce()
    const [row] = await harness.rows()
    assert.equal(row?.status, 'pending')
    assert.equal(row?.last_error, 'timed out after 200 ms')
    const [attempt] = await harness.attempts(row.id)
    assert.ok(
      attempt && attempt.durationMs >= 190 && attempt.durationMs < maxMs,
      `took ${attempt?.durationMs} ms`,
    )
  }

  // The HTTP client's timers tick every half second: a timeout fires up to a second late.
  it('abandons a request that outlives the timeout and retries it later', async () => {
    await expectTimedOut({ status: 200, delayMs: 5_000 }, 2_000)
  })

  it('cuts off a response body that trickles past the timeout', async () => {
    await expectTimedOut({ status: 200, body: 'x'.repeat(100), trickleMs: 20 }, 1_000)
  })
})

describe('webhook delivery with claims ahead of requests', () => {
  let harness: Harness
  let receiver: Receiver

  beforeEach(async () => {
    // One request at a time, so a second claimed delivery waits for its slot.
    harness = await openHarness({ concurrency: 1, circuit: { failureThreshold: 1, cooldownMs: 60_000 } })
    receiver = await Receiver.start()
  })
  afterEach(async () => {
    await harness.close()
    await receiver.stop()
  })

  const emitThree = async () => {
    const session = newSession()
    for (let i = 0; i < 3; i++) await harness.emit('message.received', { session, data: { i } })
  }
  const states = async () =>
    (await harness.rows()).map((row) => [
      row.status,
      row.attempts,
      row.lease_token === null ? 'free' : 'leased',
    ])

  it('hands back what it claimed but had not sent when stopped, rather than holding the lease', async () => {
    await harness.createWebhook({ url: receiver.url() })
    receiver.respond = () => ({ status: 200, delayMs: 200 })
    await emitThree()
    harness.module.worker.start()
    await eventually(() => receiver.active === 1, 'the first request to be under way')
    await harness.module.worker.stop()

    assert.equal(receiver.requests.length, 1)
    assert.deepEqual(await states(), [
      ['delivered', 1, 'free'],
      ['pending', 0, 'free'],
      ['pending', 0, 'free'],
    ])
    const [, handedBack] = await harness.rows()
    assert.ok(handedBack && handedBack.next_attempt_at <= harness.clock.now(), 'due again at once')
  })

  it('does not send a delivery claimed ahead once its endpoint’s circuit has opened', async () => {
    await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 5 },
    })
    receiver.respond = () => ({ status: 500, delayMs: 50 })
    await emitThree()
    harness.module.worker.start()
    await eventually(async () => {
      const [first, second] = await harness.rows()
      return first?.attempts === 1 && second?.lease_token === null
    }, 'the failure and the hand-back to be stored')
    await harness.module.worker.stop()

    assert.equal(receiver.requests.length, 1, 'the open circuit stopped the delivery waiting behind')
    assert.deepEqual(await states(), [
      ['pending', 1, 'free'],
      ['pending', 0, 'free'],
      ['pending', 0, 'free'],
    ])
  })
})

describe('webhook delivery outcomes', () => {
  let harness: Harness
  let receiver: Receiver

  before(async () => {
    harness = await openHarness()
    receiver = await Receiver.start()
  })
  after(async () => {
    await harness.close()
    await receiver.stop()
  })

  it('stores the other outcomes of a batch when one delivery was deleted mid-request', async () => {
    const gone = await harness.createWebhook({ url: receiver.url('/gone') })
    const kept = await harness.createWebhook({ url: receiver.url('/kept') })
    receiver.respond = () => ({ status: 200, delayMs: 150 })
    await harness.emit('message.received', { session: newSession() })
    const run = harness.module.worker.runOnce()
    await eventually(() => receiver.active === 2, 'both requests to be under way')
    // Deleting the webhook takes its delivery with it: its attempt can no longer be stored.
    await harness.module.service.delete(harness.organizationId, gone.id)
    assert.equal(await run, 2)

    const rows = await harness.rows()
    assert.deepEqual(
      rows.map((row) => [row.webhook_id, row.status, row.attempts]),
      [[kept.id, 'delivered', 1]],
    )
    assert.equal((await harness.attempts(rows[0]!.id)).length, 1)
  })
})

describe('webhook delivery handed to the worker at enqueue', () => {
  let harness: Harness
  let receiver: Receiver
  /** how many deliveries each claim query found, from when it is reset */
  let claims: number[]

  const open = async (options: Parameters<typeof openHarness>[0] = {}) => {
    // No poll within a test: only a wake, a hand-back or a settled claim makes a claim.
    harness = await openHarness({ pollIntervalMs: 600_000, ...options })
    receiver = await Receiver.start()
    const deliveries = harness.module.deliveries
    const claimAndComplete = deliveries.completeAndClaim.bind(deliveries)
    deliveries.completeAndClaim = async (completions, options) => {
      const result = await claimAndComplete(completions, options)
      if (options.limit > 0) claims.push(result.claimed.length)
      return result
    }
  }
  afterEach(async () => {
    await harness.close()
    await receiver.stop()
  })

  /** Until the running worker's first claim (which finds nothing) is behind it. */
  const startWorker = async () => {
    claims = []
    harness.module.worker.start()
    await eventually(() => claims.length === 1, 'the first claim')
    claims = []
  }
  const leases = async () =>
    (await harness.rows()).map((row) => (row.lease_token === null ? 'free' : 'leased'))

  it('writes a fresh delivery leased and sends it without a claim', async () => {
    await open()
    await harness.createWebhook({ url: receiver.url() })
    receiver.respond = () => ({ status: 200, delayMs: 100 })
    await startWorker()
    const event = await harness.emit('message.received', { session: newSession(), publish: false })
    const [row] = await harness.rows()
    assert.equal(row?.lease_token === null, false, 'leased in the transaction that stored it')
    assert.ok(
      row && row.next_attempt_at > harness.clock.now(),
      'out of the claim’s range until the lease ends',
    )
    harness.module.outbox.published(event)
    await eventually(async () => (await harness.rows())[0]?.status === 'delivered', 'the delivery')
    await harness.module.worker.stop()
    assert.deepEqual(
      receiver.events().map((received) => received.id),
      [event.id],
    )
    assert.deepEqual(claims, [], 'no claim was made for it')
    assert.equal((await harness.attempts(row.id)).length, 1)
  })

  it('claims a delivery handed over but never sent (its process died after the commit) once the lease ends', async () => {
    await open()
    await harness.createWebhook({ url: receiver.url() })
    await startWorker()
    const event = await harness.emit('message.received', { session: newSession(), publish: false })
    await harness.module.worker.stop()
    assert.deepEqual(await leases(), ['leased'])
    assert.equal(await harness.module.worker.runOnce(), 0, 'the lease is respected')
    harness.clock.advance(62_000)
    assert.equal(await harness.module.worker.runOnce(), 1)
    assert.deepEqual(
      receiver.events().map((received) => received.id),
      [event.id],
    )
    assert.deepEqual(await statuses(), ['delivered'])
  })

  it('leaves ordered endpoints and endpoints whose circuit is not closed to the claim', async () => {
    await open({ circuit: { failureThreshold: 1, cooldownMs: 60_000 } })
    const failing = await harness.createWebhook({ url: receiver.url('/failing') })
    await harness.createWebhook({ url: receiver.url('/ordered'), ordered: true })
    await harness.createWebhook({ url: receiver.url('/plain') })
    receiver.respond = (request) => (request.path === '/failing' ? 500 : 200)
    // The first event opens the failing endpoint's circuit.
    await harness.emit('message.received', { session: newSession() })
    assert.equal(await harness.module.worker.runOnce(), 3)
    assert.equal(harness.module.worker.breaker.state(failing.id, harness.clock.now()), 'open')
    await startWorker()
    await harness.emit('message.received', { session: newSession(), publish: false })
    await harness.module.worker.stop()
    const fresh = (await harness.rows()).slice(3)
    assert.deepEqual(
      fresh
        .map((row) => [
          row.webhook_id === failing.id ? 'failing' : row.ordering_key ? 'ordered' : 'plain',
          row.lease_token === null ? 'free' : 'leased',
        ])
        .sort(),
      [
        ['failing', 'free'],
        ['ordered', 'free'],
        ['plain', 'leased'],
      ],
    )
  })

  it('leaves a delivery with a large body to the claim, which bounds what the worker holds', async () => {
    await open()
    await harness.createWebhook({ url: receiver.url() })
    await startWorker()
    const session = newSession()
    await harness.emit('message.received', { session, data: { text: 'x'.repeat(20_000) }, publish: false })
    await harness.emit('message.received', { session, data: { text: 'x'.repeat(1_000) }, publish: false })
    await harness.module.worker.stop()
    assert.deepEqual(await leases(), ['free', 'leased'])
  })

  it('keeps what it holds when another webhook is edited', async () => {
    await open({ concurrency: 1 })
    await harness.createWebhook({ url: receiver.url('/a') })
    const other = await harness.createWebhook({ url: receiver.url('/b'), events: ['session.*'] })
    receiver.respond = () => ({ status: 200, delayMs: 100 })
    await startWorker()
    const session = newSession()
    await harness.emit('message.received', { session, data: { i: 0 } })
    await harness.emit('message.received', { session, data: { i: 1 } })
    await eventually(() => receiver.active === 1, 'the first request')
    await harness.module.service.update(harness.organizationId, other.id, { description: 'renamed' })
    await eventually(async () => (await statuses()).every((status) => status === 'delivered'), 'both')
    await harness.module.worker.stop()
    assert.ok(
      claims.every((found) => found === 0),
      'nothing was handed back to be claimed',
    )
  })

  it('takes no more than it has room for; a claim finds the rest', async () => {
    // One request at a time, and two deliveries held at most.
    await open({ concurrency: 1, handoffCapacity: 2 })
    for (let i = 0; i < 3; i++) await harness.createWebhook({ url: receiver.url(`/${i}`) })
    receiver.respond = () => ({ status: 200, delayMs: 50 })
    await startWorker()
    const event = await harness.emit('message.received', { session: newSession(), publish: false })
    assert.deepEqual((await leases()).sort(), ['free', 'leased', 'leased'])
    harness.module.outbox.published(event)
    await eventually(
      async () => (await statuses()).every((status) => status === 'delivered'),
      'all three delivered',
    )
    await harness.module.worker.stop()
    assert.deepEqual(receiver.requests.map((request) => request.path).sort(), ['/0', '/1', '/2'])
    assert.ok(receiver.events().every((received) => received.id === event.id))
    assert.ok(
      claims.some((found) => found === 1),
      'the unleased one was claimed',
    )
  })

  const statuses = async () => (await harness.rows()).map((row) => row.status)
})

describe('webhook delivery bodies stored with their events', () => {
  let harness: Harness
  let receiver: Receiver

  beforeEach(async () => {
    harness = await openHarness({ pollIntervalMs: 600_000 })
    receiver = await Receiver.start()
  })
  afterEach(async () => {
    await harness.close()
    await receiver.stop()
  })

  /** The gateway's recorder over the harness: published events are handed to the worker. */
  const recorder = () => {
    const bus = new EventBus()
    bus.subscribe((event) => harness.module.outbox.published(event))
    return new EventRecorder({
      events: new EventsRepository(harness.database.db),
      bus,
      newId,
      now: harness.clock.now,
      database: harness.database,
      outbox: harness.module.outbox,
    })
  }
  const session = () => ({ ...newSession(), organizationId: harness.organizationId })
  const states = async () => (await harness.rows()).map((row) => [row.status, row.last_error])

  it('sends the same bytes at every attempt: the first handed over, the retry built from the stored event', async () => {
    await harness.createWebhook({
      url: receiver.url(),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 3 },
    })
    let failFirst = true
    receiver.respond = () => {
      if (!failFirst) return 200
      failFirst = false
      return 500
    }
    harness.module.worker.start()
    const [event] = await recorder().record(session(), [
      { type: 'session.qr', data: { value: '👍 "quoted" \u2028 é', expiresAt: 1 } },
    ])
    await eventually(async () => (await harness.rows())[0]?.attempts === 1, 'the failed attempt')
    await harness.module.worker.stop()
    harness.clock.advance(1_000)
    assert.equal(await harness.module.worker.runOnce(), 1)

    assert.equal(receiver.requests.length, 2)
    const [first, retry] = receiver.requests
    assert.ok(event)
    assert.equal(first?.body, wireBody(event))
    assert.equal(retry?.body, first?.body, 'byte for byte')
    const [row] = await harness.rows()
    assert.deepEqual(
      (await harness.attempts(row?.id ?? '')).map((attempt) => attempt.statusCode),
      [500, 200],
    )
  })

  it('keeps what a deleted session still owes: the bodies move from its events to its deliveries', async () => {
    await harness.createWebhook({ url: receiver.url() })
    const owner = session()
    await recorder().store(owner, [{ type: 'session.qr', data: { value: 'sent', expiresAt: 1 } }])
    assert.equal(await harness.module.worker.runOnce(), 1, 'one delivered before the deletion')
    const events = await recorder().store(owner, [
      { type: 'session.status', data: { status: 'stopped', statuses: [], lastError: null } },
    ])
    assert.deepEqual(
      (await harness.rows()).map((row) => row.body),
      ['', ''],
      'stored with the events',
    )

    await recorder().forgetSession(owner.id)
    const left = await harness.database.db.selectFrom('events').select('id').execute()
    assert.deepEqual(left, [], 'the session took its events with it')
    assert.deepEqual(
      (await harness.rows()).map((row) => row.body),
      ['', wireBody(events[0]!)],
      'the one still owed keeps its body',
    )

    assert.equal(await harness.module.worker.runOnce(), 1)
    assert.equal(receiver.requests[1]?.body, wireBody(events[0]!))
  })

  it('gives up a delivery whose event is gone, saying why, and sends nothing', async () => {
    await harness.createWebhook({ url: receiver.url() })
    await recorder().store(session(), [{ type: 'session.qr', data: { value: 'x', expiresAt: 1 } }])
    await harness.database.db.deleteFrom('events').execute()

    assert.equal(await harness.module.worker.runOnce(), 1)
    assert.equal(receiver.requests.length, 0)
    assert.deepEqual(await states(), [
      ['dead', 'the event it carries is no longer stored (deleted with its session)'],
    ])
  })
})

describe('webhook delivery alongside a stream of handed-over deliveries', () => {
  let harness: Harness
  let receiver: Receiver

  afterEach(async () => {
    await harness.close()
    await receiver.stop()
  })

  const rowsAt = async (path: string) => {
    const hooks = await harness.module.webhooks.listByOrganization(harness.organizationId)
    const hook = hooks.find((webhook) => webhook.url.endsWith(path))
    return (await harness.rows()).filter((row) => row.webhook_id === hook?.id)
  }

  it('claims a retry falling due while fresh deliveries keep the worker busy', async () => {
    harness = await openHarness({ pollIntervalMs: 100 })
    receiver = await Receiver.start()
    await harness.createWebhook({
      url: receiver.url('/flaky'),
      retries: { policy: 'constant', delaySeconds: 1, attempts: 3 },
    })
    await harness.createWebhook({ url: receiver.url('/busy'), events: ['session.*'] })
    let failed = false
    receiver.respond = (request) => {
      if (request.path === '/flaky' && !failed) {
        failed = true
        return 500
      }
      return 200
    }
    harness.module.worker.start()
    const session = newSession()
    await harness.emit('message.received', { session })
    await eventually(async () => (await rowsAt('/flaky'))[0]?.attempts === 1, 'the failed attempt')
    harness.clock.advance(1_000)
    // Every 10 ms a fresh delivery to another endpoint: each one finishing nudges the worker.
    let busy = true
    const stream = (async () => {
      while (busy) {
        await harness.emit('session.status', { session })
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    })()
    try {
      await eventually(async () => (await rowsAt('/flaky'))[0]?.status === 'delivered', 'the retry', 3_000)
    } finally {
      busy = false
      await stream
    }
    await harness.module.worker.stop()
  })

  it('keeps claiming while more deliveries are handed over than its claim window holds', async () => {
    // One request at a time (four handed to the HTTP client ahead): a claim window of two, beside up to 50 handed over.
    harness = await openHarness({ concurrency: 1, handoffCapacity: 50, pollIntervalMs: 600_000 })
    receiver = await Receiver.start()
    await harness.createWebhook({ url: receiver.url('/plain') })
    await harness.createWebhook({ url: receiver.url('/ordered'), ordered: true })
    receiver.respond = () => ({ status: 200, delayMs: 20 })
    harness.module.worker.start()
    const session = newSession()
    for (let i = 0; i < 20; i++) await harness.emit('message.received', { session, data: { i } })
    await eventually(
      async () => (await harness.rows()).every((row) => row.status === 'delivered'),
      'every delivery',
    )
    await harness.module.worker.stop()
    const paths = receiver.requests.map((request) => request.path)
    assert.equal(paths.filter((path) => path === '/ordered').length, 20)
    const orderedAmidPlain = paths.slice(0, paths.lastIndexOf('/plain')).filter((path) => path === '/ordered')
    assert.ok(
      orderedAmidPlain.length >= 3,
      `the ordered queue (claimed) went on while handed-over deliveries waited: ${paths.join(' ')}`,
    )
  })

  it('hands back a delivery whose lease ran short without taking a half-open circuit’s probe', async () => {
    harness = await openHarness({
      concurrency: 1,
      leaseMs: 2_100,
      circuit: { failureThreshold: 1, cooldownMs: 0 },
      pollIntervalMs: 600_000,
    })
    receiver = await Receiver.start()
    const webhook = await harness.createWebhook({ url: receiver.url() })
    let first = true
    receiver.respond = () => {
      if (!first) return 200
      first = false
      return { status: 500, delayMs: 200 }
    }
    harness.module.worker.start()
    const session = newSession()
    await harness.emit('message.received', { session, data: { i: 0 } })
    await harness.emit('message.received', { session, data: { i: 1 } })
    await eventually(() => receiver.active === 1, 'the first request')
    // The second waits for the only slot while its lease runs down to less than a request
    // needs: it is handed back, claimed again — as the half-open circuit's probe — and sent.
    harness.clock.advance(200)
    await eventually(async () => (await harness.rows())[1]?.status === 'delivered', 'the second delivery')
    await harness.module.worker.stop()
    const [failed, probe] = await harness.rows()
    assert.deepEqual([failed?.status, failed?.attempts], ['pending', 1])
    assert.equal(probe?.attempts, 1, 'handed back untried, then tried once')
    assert.equal(receiver.requests.length, 2)
    assert.equal(harness.module.worker.breaker.state(webhook.id, harness.clock.now()), 'closed')
  })

  it('runs no claim for deliveries enqueued to an endpoint whose circuit is open', async () => {
    harness = await openHarness({
      pollIntervalMs: 600_000,
      circuit: { failureThreshold: 1, cooldownMs: 60_000 },
    })
    receiver = await Receiver.start()
    await harness.createWebhook({ url: receiver.url() })
    receiver.respond = () => 500
    harness.module.worker.start()
    const session = newSession()
    await harness.emit('message.received', { session })
    await eventually(async () => (await harness.rows())[0]?.attempts === 1, 'the failed attempt')
    // Every claim would walk past the open circuit's rows, all of them, to find nothing.
    const deliveries = harness.module.deliveries
    const completeAndClaim = deliveries.completeAndClaim.bind(deliveries)
    let claims = 0
    deliveries.completeAndClaim = (completions, options) => {
      if (options.limit > 0) claims++
      return completeAndClaim(completions, options)
    }
    for (let i = 0; i < 10; i++) await harness.emit('message.received', { session, data: { i } })
    await new Promise((resolve) => setTimeout(resolve, 100))
    await harness.module.worker.stop()
    assert.equal(claims, 0)
    assert.equal(receiver.requests.length, 1)
    assert.equal((await harness.rows()).filter((row) => row.status === 'pending').length, 11)
  })

  it('does not send what waits for a connection once its webhook is deleted', async () => {
    harness = await openHarness({ concurrency: 1, pollIntervalMs: 600_000 })
    receiver = await Receiver.start()
    const webhook = await harness.createWebhook({ url: receiver.url() })
    receiver.respond = () => ({ status: 200, delayMs: 200 })
    harness.module.worker.start()
    const session = newSession()
    await harness.emit('message.received', { session, data: { i: 0 } })
    await harness.emit('message.received', { session, data: { i: 1 } })
    await eventually(() => receiver.active === 1, 'the first request')
    await harness.module.service.delete(harness.organizationId, webhook.id)
    await new Promise((resolve) => setTimeout(resolve, 400))
    await harness.module.worker.stop()
    assert.equal(receiver.requests.length, 1, 'the second, held by the HTTP client, was taken back')
    assert.deepEqual(await harness.rows(), [], 'the deliveries went with their webhook')
  })

  it('sends a handed-over delivery as its webhook stands after an edit', async () => {
    harness = await openHarness({ concurrency: 1, pollIntervalMs: 600_000 })
    receiver = await Receiver.start()
    const webhook = await harness.createWebhook({ url: receiver.url('/old') })
    receiver.respond = (request) => (request.path === '/old' ? { status: 200, delayMs: 200 } : 200)
    harness.module.worker.start()
    const session = newSession()
    await harness.emit('message.received', { session, data: { i: 0 } })
    await harness.emit('message.received', { session, data: { i: 1 } })
    await eventually(() => receiver.active === 1, 'the first request')
    await harness.module.service.update(harness.organizationId, webhook.id, { url: receiver.url('/new') })
    await eventually(
      async () => (await harness.rows()).every((row) => row.status === 'delivered'),
      'both delivered',
    )
    await harness.module.worker.stop()
    assert.deepEqual(
      receiver.requests.map((request) => request.path),
      ['/old', '/new'],
    )
  })
})

describe('webhook delivery to a slow receiver beside a quick one', () => {
  let harness: Harness
  let slow: Receiver
  let quick: Receiver

  async function open(options: Parameters<typeof openHarness>[0] = {}) {
    harness = await openHarness({ pollIntervalMs: 600_000, ...options })
    slow = await Receiver.start()
    quick = await Receiver.start()
    // Answers take 300 ms: with 16 connections to it, 53 a second.
    slow.respond = () => ({ status: 200, delayMs: 300 })
    await harness.createWebhook({ url: slow.url(), events: ['message.*'] })
    await harness.createWebhook({ url: quick.url(), events: ['session.*'] })
  }
  afterEach(async () => {
    await harness.close()
    await slow.stop()
    await quick.stop()
  })

  const quickRows = async () => (await harness.rows()).filter((row) => row.event_type === 'session.status')
  const quickDelivered = async () => (await quickRows()).filter((row) => row.status === 'delivered').length

  /** 400 events for the slow receiver, then 3 for the quick one. */
  const recordBacklogThenQuick = async () => {
    const session = newSession()
    for (let i = 0; i < 400; i++) await harness.emit('message.received', { session, data: { i } })
    for (let i = 0; i < 3; i++) await harness.emit('session.status', { session, data: { i } })
  }
  /** The quick receiver's three arrive long before the slow one's backlog is through. */
  const quickWentFirst = async () => {
    await eventually(async () => (await quickDelivered()) === 3, 'the quick receiver’s three', 10_000)
    const slowSoFar = slow.requests.length
    await harness.module.worker.stop()
    assert.equal(quick.requests.length, 3)
    assert.ok(slowSoFar < 150, `the quick receiver waited for ${slowSoFar} of the slow one’s 400`)
  }

  it('sends the quick receiver’s fresh deliveries at once, not after the slow one’s backlog', async () => {
    await open()
    harness.module.worker.start()
    await recordBacklogThenQuick()
    await quickWentFirst()
  })

  it('sends the quick receiver’s deliveries at once while two slow receivers have every connection busy', async () => {
    await open()
    const slower = await Receiver.start()
    try {
      // Each slow receiver takes 16 requests at a time (its connections), 32 in all: as many
      // as the worker sends at once. Requests out that long no longer count against that.
      slow.respond = () => ({ status: 200, delayMs: 1_500 })
      slower.respond = () => ({ status: 200, delayMs: 1_500 })
      await harness.createWebhook({ url: slower.url(), events: ['message.*'] })
      harness.module.worker.start()
      const session = newSession()
      await harness.emitMany('message.received', 100, { session, data: (i) => ({ i }) })
      await eventually(() => slow.active === 16 && slower.active === 16, 'both slow receivers busy', 5_000)
      for (let i = 0; i < 3; i++) {
        const started = performance.now()
        await harness.emit('session.status', { session, data: { i } })
        await eventually(
          () => quick.requests.length === i + 1,
          `the quick receiver’s delivery ${i}`,
          5_000,
          5,
        )
        const waited = performance.now() - started
        assert.ok(waited < 700, `the quick receiver’s delivery ${i} waited ${Math.round(waited)} ms`)
      }
      await harness.module.worker.stop()
    } finally {
      await slower.stop()
    }
  })

  it('claims the quick receiver’s deliveries beside the slow one’s backlog', async () => {
    await open()
    // Recorded while the worker was down: every delivery waits for a claim, the slow receiver's oldest.
    await recordBacklogThenQuick()
    harness.module.worker.start()
    await quickWentFirst()
  })

  it('claims an ordered receiver’s deliveries while the slow one’s wait for the HTTP client', async () => {
    await open()
    await harness.createWebhook({ url: quick.url('/ordered'), events: ['session.*'], ordered: true })
    harness.module.worker.start()
    const session = newSession()
    // Handed over, more than it may have with the HTTP client: the rest wait, parked.
    for (let i = 0; i < 300; i++) await harness.emit('message.received', { session, data: { i } })
    // Too large to be handed over: these wait for a claim, which leaves the parked endpoint out.
    const large = 'x'.repeat(10_000)
    for (let i = 0; i < 100; i++) await harness.emit('message.received', { session, data: { i, large } })
    // Ordered deliveries are claimed, one at a time per session: each needs a claim.
    for (let i = 0; i < 5; i++) await harness.emit('session.status', { session, data: { i } })
    const ordered = () => quick.requests.filter((request) => request.path === '/ordered').length
    await eventually(() => ordered() === 5, 'the ordered receiver’s five', 10_000)
    const slowSoFar = slow.requests.length
    await harness.module.worker.stop()
    assert.ok(slowSoFar < 200, `the ordered receiver waited for ${slowSoFar} of the slow one’s 400`)
  })

  it('claims an endpoint’s older deliveries while fresh ones keep it busy, ahead of the fresh', async () => {
    // One request at a time, four handed to the HTTP client: a burst fills the handoff (20),
    // the rest waits for a claim; then a fresh delivery every 20 ms keeps the endpoint parked.
    await open({ concurrency: 1, handoffCapacity: 20, pollIntervalMs: 200 })
    slow.respond = () => ({ status: 200, delayMs: 20 })
    harness.module.worker.start()
    const session = newSession()
    for (let i = 0; i < 30; i++) await harness.emit('message.received', { session, data: { i } })
    const older = (await harness.rows()).filter((row) => row.lease_token === null).map((row) => row.event_id)
    assert.ok(older.length >= 5, `${older.length} left for a claim`)
    // Fresh ones keep coming until the older ones are out — for good, were they starved (10 s here).
    const started = performance.now()
    let fresh = 0
    const olderLeft = () => {
      const sent = new Set(slow.events().map((event) => event.id))
      return older.some((id) => !sent.has(id))
    }
    while (olderLeft() && performance.now() - started < 10_000) {
      await harness.emit('message.received', { session, data: { i: 100 + fresh++ } })
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const sent = new Set(slow.events().map((event) => event.id))
    await harness.module.worker.stop()
    assert.deepEqual(
      older.filter((id) => !sent.has(id)),
      [],
      `the older ones went out while ${fresh} fresh ones were recorded`,
    )
  })

  it('keeps places in the handoff for other endpoints than the one that fills it', async () => {
    // Room for 50 handed over; a claim window of 2 (one request at a time) stays for the others.
    await open({ concurrency: 1, handoffCapacity: 50 })
    // None of its deliveries finishes (and leaves room) while the events are recorded.
    slow.respond = () => ({ status: 200, delayMs: 1_500 })
    harness.module.worker.start()
    const session = newSession()
    // In one transaction, as the recorder's group commit stores them: the share counts them as they are taken.
    await harness.emitMany('message.received', 60, { session, data: (i) => ({ i }) })
    await harness.emit('session.status', { session })
    const slowRows = (await harness.rows()).filter((row) => row.event_type === 'message.received')
    assert.equal(slowRows.filter((row) => row.lease_token !== null).length, 48, 'the slow receiver’s share')
    const [handed] = await quickRows()
    assert.ok(handed?.lease_token, 'the quick receiver’s delivery was handed over, not left to a claim')
    await eventually(async () => (await quickDelivered()) === 1, 'the quick receiver’s delivery')
    await harness.module.worker.stop()
  })
})
