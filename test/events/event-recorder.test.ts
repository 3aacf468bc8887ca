import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type Kysely, sql } from 'kysely'
import { newId } from '../../src/domain/ids.ts'
import type { DomainEvent } from '../../src/events/catalogue.ts'
import { EventBus } from '../../src/events/event-bus.ts'
import { EventRecorder, type EventSession } from '../../src/events/event-recorder.ts'
import type { Database } from '../../src/store/db.ts'
import { EventsRepository } from '../../src/store/events.repository.ts'
import type { Tables } from '../../src/store/schema.ts'
import { type Harness, newSession, openHarness, sessionWebhooks } from '../webhooks/harness.ts'

/** The database with its transactions counted. */
function counting(database: Database): { database: Database; transactions: () => number } {
  let count = 0
  const db = new Proxy(database.db, {
    get(target, property) {
      if (property === 'transaction') {
        return () => {
          count++
          return target.transaction()
        }
      }
      const value = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  }) as Kysely<Tables>
  return { database: { ...database, db }, transactions: () => count }
}

const presence = (chatJid: string, state: 'available' | 'composing' | 'paused') => ({
  chatJid,
  participant: { jid: chatJid, lid: null, phone: null },
  presence: state,
  lastSeen: null,
})

describe('event recorder', () => {
  let harness: Harness
  let recorder: EventRecorder
  let transactions: () => number
  const published: DomainEvent[] = []

  before(async () => {
    harness = await openHarness()
    const counted = counting(harness.database)
    transactions = counted.transactions
    const bus = new EventBus()
    bus.subscribe((event) => published.push(event))
    recorder = new EventRecorder({
      events: new EventsRepository(harness.database.db),
      bus,
      newId,
      database: counted.database,
      outbox: harness.module.outbox,
    })
  })
  after(() => harness.close())

  /** Another writer's transaction, open until released. */
  const holdDatabase = () => {
    let release!: () => void
    const holding = harness.database.db.transaction().execute(
      () =>
        new Promise<void>((resolve) => {
          release = resolve
        }),
    )
    return { release: () => release(), holding }
  }
  /** The events' ids in the order their rows were written. */
  const inCommitOrder = async (ids: string[]) =>
    (
      await harness.database.db
        .selectFrom('events')
        .select('id')
        .where('id', 'in', ids)
        .orderBy(sql`rowid`)
        .execute()
    ).map((row) => row.id)

  const sessionOf = (webhooks: unknown[] = []): EventSession => ({
    ...newSession(),
    organizationId: harness.organizationId,
    webhooks: sessionWebhooks(harness.secretBox, webhooks),
  })

  it('stores the calls of one loop turn in one transaction, each with its own session’s deliveries', async () => {
    const hooked = sessionOf([{ url: 'https://hooks.example/a' }])
    const quiet = sessionOf()
    const before = transactions()
    published.length = 0
    const results = await Promise.all([
      recorder.record(hooked, [{ type: 'presence.update', data: presence('a', 'available') }]),
      recorder.record(quiet, [{ type: 'presence.update', data: presence('b', 'available') }]),
      recorder.record(hooked, [{ type: 'presence.update', data: presence('c', 'composing') }]),
    ])
    assert.equal(transactions() - before, 1, 'one transaction for the three calls')
    const ids = results.map(([event]) => event?.id)
    assert.deepEqual(
      published.map((event) => event.id),
      ids,
      'published once stored, in the order recorded',
    )
    const rows = await harness.rows()
    const delivered = ids.map((id) => rows.filter((row) => row.event_id === id).length)
    assert.deepEqual(delivered, [1, 0, 1], 'a delivery for each event of the session with a webhook')
    const stored = await harness.database.db
      .selectFrom('events')
      .select('id')
      .where('id', 'in', ids as string[])
      .execute()
    assert.equal(stored.length, 3)
  })

  it('gives events ids in the order they are committed, whichever way they were stored', async () => {
    const session = sessionOf()
    // A record() call, then in the same turn a transaction of another writer, then another call.
    const first = recorder.record(session, [{ type: 'presence.update', data: presence('a', 'available') }])
    const second = harness.database.db
      .transaction()
      .execute((trx) =>
        recorder.store(session, [{ type: 'presence.update', data: presence('b', 'paused') }], trx),
      )
    const third = recorder.record(session, [{ type: 'presence.update', data: presence('c', 'composing') }])
    const ids = (await Promise.all([first, second, third])).map(([event]) => event?.id as string)
    const committed = await inCommitOrder(ids)
    assert.deepEqual(
      committed,
      [...committed].sort(),
      'ids ascend in commit order, so a stream resuming after any of them misses none committed later',
    )
    assert.equal(committed.length, 3)
  })

  it('gives ids in commit order also while another writer holds the database', async () => {
    const session = sessionOf()
    const { release, holding } = holdDatabase()
    const grouped = recorder.record(session, [{ type: 'presence.update', data: presence('a', 'available') }])
    await new Promise((resolve) => setImmediate(resolve)) // the group now waits for the database
    const alone = recorder.store(session, [{ type: 'presence.update', data: presence('b', 'paused') }])
    release()
    const [[first], [second]] = await Promise.all([grouped, alone, holding])
    const ids = await inCommitOrder([first?.id ?? '', second?.id ?? ''])
    assert.deepEqual(ids, [...ids].sort())
  })

  it('idle() waits for a group that is still waiting for the database', async () => {
    const session = sessionOf()
    // Another writer holds the database past the end of the turn.
    const { release, holding } = holdDatabase()
    let stored = false
    const recorded = recorder.record(session, [{ type: 'presence.update', data: presence('a', 'available') }])
    void recorded.then(() => {
      stored = true
    })
    await new Promise((resolve) => setImmediate(resolve))
    let idle = false
    const idling = recorder.idle().then(() => {
      idle = true
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(idle, false, 'the group is not stored yet')
    release()
    await Promise.all([holding, idling])
    assert.equal(stored, true)
  })

  it('never stamps an event earlier than the one before, even when the clock steps back', async () => {
    let now = 2_000_000_000_000
    const stepping = new EventRecorder({
      events: new EventsRepository(harness.database.db),
      bus: new EventBus(),
      newId,
      now: () => now,
      database: harness.database,
      outbox: harness.module.outbox,
    })
    const session = sessionOf()
    const [before] = await stepping.record(session, [
      { type: 'presence.update', data: presence('a', 'available') },
    ])
    now -= 30_000
    const [after] = await stepping.record(session, [
      { type: 'presence.update', data: presence('b', 'paused') },
    ])
    assert.ok(before && after && after.timestamp >= before.timestamp)
    assert.ok(after.id > before.id)
  })

  it('rejects only the call whose events cannot be stored', async () => {
    const session = sessionOf()
    published.length = 0
    const [good, bad, alsoGood] = await Promise.allSettled([
      recorder.record(session, [{ type: 'presence.update', data: presence('a', 'available') }]),
      // A payload JSON cannot hold: storing it throws.
      recorder.record(session, [
        { type: 'presence.update', data: { ...presence('b', 'available'), lastSeen: 10n as never } },
      ]),
      recorder.record(session, [{ type: 'presence.update', data: presence('c', 'paused') }]),
    ])
    assert.equal(good.status, 'fulfilled')
    assert.equal(bad.status, 'rejected')
    assert.equal(alsoGood.status, 'fulfilled')
    assert.equal(published.length, 2, 'the stored ones are published')
  })
})
