import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Principal } from '../../src/accounts/api-key.types.ts'
import { AppError } from '../../src/domain/errors.ts'
import { EventBus } from '../../src/events/event-bus.ts'
import { EventStreamService } from '../../src/realtime/event-stream.service.ts'
import type { EventsRepository } from '../../src/store/events.repository.ts'

const principal: Principal = {
  organizationId: 'org_1',
  keyId: 'key_1',
  role: 'viewer',
  sessionIds: null,
  expiresAt: null,
}
const everything = { types: [], sessionIds: null }
/** The stored event the tests resume after. */
const cursorEvent = {
  id: 'evt_a',
  organizationId: 'org_1',
  sessionId: null,
  type: 'x',
  payload: {},
  createdAt: 1,
}
/** A store whose replay fails after the cursor was found. */
const failingReplay = {
  getById: async () => cursorEvent,
  listAfter: async () => {
    throw new Error('the store went away')
  },
} as unknown as EventsRepository

describe('the event stream service', () => {
  it('leaves nothing subscribed when a replay fails', async () => {
    const bus = new EventBus()
    const stream = new EventStreamService({ events: failingReplay, bus })
    const ends: string[] = []
    await assert.rejects(
      stream.subscribe(principal, everything, () => true, {
        after: 'evt_a',
        end: (why) => ends.push(why),
      }),
      /went away/,
    )
    // Left registered, it would be ended now.
    stream.revoked(principal.keyId)
    assert.deepEqual(ends, [], 'nothing of the failed subscription is left')
  })

  it('refuses a stream for a key revoked while it was opening, and voids its tickets', async () => {
    const bus = new EventBus()
    const stream = new EventStreamService({ events: failingReplay, bus })
    const { ticket } = stream.issueTicket(principal)
    stream.revoked(principal.keyId)
    await assert.rejects(
      stream.subscribe(principal, everything, () => true),
      /revoked/,
    )
    assert.throws(() => stream.redeemTicket(ticket), /unknown or expired/)
  })

  it('ends an open stream when its key is revoked, and only that key’s', async () => {
    const bus = new EventBus()
    const stream = new EventStreamService({ events: failingReplay, bus })
    const ends: string[] = []
    const other = { ...principal, keyId: 'key_2' }
    await stream.subscribe(principal, everything, () => true, { end: (why) => ends.push(`1 ${why}`) })
    await stream.subscribe(other, everything, () => true, { end: (why) => ends.push(`2 ${why}`) })
    stream.revoked(principal.keyId)
    assert.deepEqual(ends, ['1 the API key was revoked'])
  })

  describe('tickets', () => {
    /** A service on a clock the test moves. */
    const onClock = () => {
      const clock = { now: 1_000_000 }
      const stream = new EventStreamService({
        events: failingReplay,
        bus: new EventBus(),
        now: () => clock.now,
      })
      return { clock, stream }
    }

    it('opens a stream within 60 s of being issued, and not after', () => {
      const { clock, stream } = onClock()
      const { ticket, expiresAt } = stream.issueTicket(principal)
      assert.equal(expiresAt, clock.now + 60_000)
      clock.now += 59_000
      assert.equal(stream.redeemTicket(ticket).keyId, principal.keyId)
      clock.now += 2_000
      assert.throws(() => stream.redeemTicket(ticket), /unknown or expired stream ticket/)
    })

    it('reopens the stream it opened while that is open and for 60 s after it ended (an EventSource reconnecting)', async () => {
      const { clock, stream } = onClock()
      const { ticket } = stream.issueTicket(principal)
      const close = await stream.subscribe(stream.redeemTicket(ticket), everything, () => true, { ticket })
      clock.now += 10 * 60_000
      assert.equal(stream.redeemTicket(ticket).keyId, principal.keyId, 'its stream is still open')
      close()
      clock.now += 59_000
      const again = await stream.subscribe(stream.redeemTicket(ticket), everything, () => true, { ticket })
      again()
      clock.now += 61_000
      assert.throws(() => stream.redeemTicket(ticket), /unknown or expired stream ticket/)
    })

    it('keeps one stream per ticket: a newer one replaces the older', async () => {
      const { stream } = onClock()
      const { ticket } = stream.issueTicket(principal)
      const ends: string[] = []
      await stream.subscribe(principal, everything, () => true, {
        ticket,
        end: (why, cause) => ends.push(`first: ${cause}, ${why}`),
      })
      await stream.subscribe(principal, everything, () => true, {
        ticket,
        end: (why, cause) => ends.push(`second: ${cause}, ${why}`),
      })
      assert.deepEqual(ends, ['first: replaced, replaced by a newer stream opened with the same ticket'])
    })

    it('is voided when its streams keep replacing each other (two clients sharing it), ending both', async () => {
      const { clock, stream } = onClock()
      const { ticket } = stream.issueTicket(principal)
      const ends: string[] = []
      // As the routes do: the ticket is redeemed first (a 401 once it is void).
      const open = (client: string) =>
        stream.subscribe(stream.redeemTicket(ticket), everything, () => true, {
          ticket,
          end: (why, cause) => ends.push(`${client}: ${cause}, ${why}`),
        })
      // A reconnect now and then is a reconnect, however many there are over time.
      for (let i = 0; i < 10; i++) {
        await open(`reconnect ${i}`)
        clock.now += 15_000
      }
      assert.ok(ends.every((end) => end.includes('replaced, replaced by a newer stream')))
      ends.length = 0
      clock.now += 60_000
      // Two clients taking turns every few seconds: within a minute, the seventh replacement voids it.
      for (let i = 0; i < 7; i++) {
        await open(i % 2 ? 'b' : 'a')
        clock.now += 3_000
      }
      assert.equal(ends.length, 8, 'six replaced, then both ended')
      assert.deepEqual(ends.slice(-2), [
        'b: credentials, this ticket keeps being opened by two clients at once: get a ticket for each client',
        'a: credentials, this ticket keeps being opened by two clients at once: get a ticket for each client',
      ])
      assert.throws(() => stream.redeemTicket(ticket), /unknown or expired stream ticket/)
    })

    it('reopens only a stream with the filters it first opened, and works 24 h at most', async () => {
      const { clock, stream } = onClock()
      const { ticket } = stream.issueTicket(principal)
      const messages = { types: ['message.*', 'session.status'], sessionIds: null }
      const close = await stream.subscribe(principal, messages, () => true, { ticket })
      close()
      await assert.rejects(
        stream.subscribe(principal, everything, () => true, { ticket }),
        /reopens only the stream it opened/,
      )
      // The same filters, written in another order.
      const reordered = { types: ['session.status', 'message.*'], sessionIds: null }
      const again = await stream.subscribe(principal, reordered, () => true, { ticket })
      clock.now += 24 * 60 * 60_000
      assert.throws(() => stream.redeemTicket(ticket), /unknown or expired stream ticket/, 'open or not')
      again()
    })

    it('leaves the stream it opened alone when a reopen fails', async () => {
      const { stream } = onClock()
      const { ticket } = stream.issueTicket(principal)
      const ends: string[] = []
      await stream.subscribe(principal, everything, () => true, { ticket, end: (why) => ends.push(why) })
      await assert.rejects(
        stream.subscribe(principal, everything, () => true, { ticket, after: 'evt_a' }),
        /went away/,
      )
      assert.deepEqual(ends, [], 'the live stream was not replaced by one that never opened')
    })

    it('never outlives its key', () => {
      const { clock, stream } = onClock()
      const expiring = { ...principal, expiresAt: clock.now + 5_000 }
      const { ticket, expiresAt } = stream.issueTicket(expiring)
      assert.equal(expiresAt, expiring.expiresAt)
      clock.now += 5_000
      assert.throws(() => stream.redeemTicket(ticket), /unknown or expired stream ticket/)
    })
  })

  it('sends nothing more to a stream dropped as too slow, and never ends it a second time', async () => {
    const bus = new EventBus()
    const stream = new EventStreamService({ events: failingReplay, bus })
    const sent: string[] = []
    const ends: string[] = []
    await stream.subscribe(principal, everything, (event) => sent.push(event.id) < 1, {
      end: (why) => ends.push(why),
    })
    const event = (id: string) =>
      ({
        id,
        type: 'session.status',
        organizationId: 'org_1',
        session: null,
        timestamp: 1,
        data: {},
      }) as never
    bus.publish(event('evt_1'))
    bus.publish(event('evt_2'))
    stream.revoked(principal.keyId)
    assert.deepEqual(sent, ['evt_1'])
    assert.deepEqual(ends, [], 'its sink ended it already')
  })

  it('ends every stream at shutdown, and opens none after, however far its request had come', async () => {
    const stream = new EventStreamService({ events: failingReplay, bus: new EventBus() })
    const ends: string[] = []
    await stream.subscribe(principal, everything, () => true, {
      end: (why, cause) => ends.push(`${cause}: ${why}`),
    })
    stream.closeAll()
    assert.deepEqual(ends, ['shutdown: the gateway is shutting down; reconnect and resume'])
    await assert.rejects(
      stream.subscribe(principal, everything, () => true),
      /shutting down/,
    )
    await assert.rejects(stream.checkCursor(principal, 'evt_a'), /shutting down/)
  })

  it('looks up open streams’ keys in the store: ends those it says no longer work, keeps them open while it cannot answer, stops looking once none is open', async () => {
    const answers = new Map<string, Error | 'hang' | undefined>()
    const asked: string[] = []
    const warnings: string[] = []
    const stream = new EventStreamService({
      events: failingReplay,
      bus: new EventBus(),
      confirmKey: async ({ keyId }) => {
        asked.push(keyId)
        const answer = answers.get(keyId)
        if (answer === 'hang') return new Promise<void>(() => {})
        if (answer) throw answer
      },
      keyCheckIntervalMs: 20,
      logger: { warn: (_fields: unknown, message: string) => warnings.push(message) } as never,
    })
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
    const checking = () => (stream as unknown as { keyCheck?: NodeJS.Timeout }).keyCheck !== undefined
    const ends: string[] = []
    const open = (keyId: string) =>
      stream.subscribe({ ...principal, keyId }, everything, () => true, {
        end: (why, cause) => ends.push(`${keyId} ${cause}: ${why}`),
      })
    await open('key_1')
    const closeOthers = [await open('key_2'), await open('key_3')]
    answers.set('key_2', new Error('the store went away'))
    answers.set('key_3', new Error('the store went away'))
    await sleep(100)
    assert.ok(asked.filter((key) => key === 'key_1').length >= 2, `asked ${asked.join(', ')}`)
    assert.deepEqual(ends, [], 'every key stands, or cannot be checked')
    // One warning a round (the last may still be under way), however many keys failed.
    const rounds = asked.filter((key) => key === 'key_2').length
    const failedWarnings = warnings.filter((message) => /failed/.test(message)).length
    assert.ok(
      failedWarnings <= rounds && failedWarnings >= rounds - 1,
      `${failedWarnings} in ${rounds} rounds`,
    )
    answers.set('key_1', new AppError('unauthorized', 'revoked'))
    await sleep(100)
    assert.deepEqual(ends, ['key_1 credentials: the API key was revoked'])
    await assert.rejects(
      stream.subscribe(principal, everything, () => true),
      /revoked/,
    )
    // A lookup that never answers holds up one round, not every round after it.
    answers.set('key_2', 'hang')
    answers.set('key_3', new AppError('unauthorized', 'revoked'))
    await sleep(150)
    assert.deepEqual(ends.slice(1), ['key_3 credentials: the API key was revoked'])
    assert.ok(warnings.includes('checking event stream keys is slow'))
    for (const close of closeOthers) close()
    assert.ok(checking())
    await sleep(60)
    assert.equal(checking(), false, 'no timer once no stream is open')
  })

  it('replays after a cursor an SSE request already checked without looking it up again', async () => {
    const looked: string[] = []
    const store = {
      getById: async (_organizationId: string, id: string) => {
        looked.push(`get ${id}`)
        return cursorEvent
      },
      listAfter: async () => {
        looked.push('list')
        return []
      },
    } as unknown as EventsRepository
    const stream = new EventStreamService({ events: store, bus: new EventBus() })
    const checked = await stream.checkCursor(principal, 'evt_a')
    const close = await stream.subscribe(principal, everything, () => true, { after: checked })
    assert.deepEqual(looked, ['get evt_a', 'list'])
    close()
  })

  it('ends an open stream when its key expires', async () => {
    const stream = new EventStreamService({ events: failingReplay, bus: new EventBus() })
    const expiring = { ...principal, expiresAt: Date.now() + 100 }
    const ended = new Promise<string>((resolve) => {
      void stream.subscribe(expiring, everything, () => true, {
        end: (why, cause) => resolve(`${cause}: ${why}`),
      })
    })
    const late = new Promise<string>((resolve) => setTimeout(() => resolve('still open after 2 s'), 2_000))
    assert.equal(await Promise.race([ended, late]), 'credentials: the API key expired')
    await assert.rejects(
      stream.subscribe({ ...principal, expiresAt: Date.now() - 1 }, everything, () => true),
      /the API key expired/,
    )
  })
})
