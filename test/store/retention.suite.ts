import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { newId } from '../../src/domain/ids.ts'
import { EventRetention } from '../../src/events/event-retention.ts'
import type { EventRecord } from '../../src/store/index.ts'
import { WebhookDeliveriesRepository } from '../../src/store/webhook-deliveries.repository.ts'
import type { DeliveryStatus } from '../../src/webhooks/webhook.types.ts'
import { createOrganization, type StoreContext } from './fixtures.ts'

const HOUR = 3_600_000
/*
 * Every row here is far older than the other suites' (their clock starts at 1.7e12), so a
 * pass's cutoff never reaches what they wrote into the same database.
 */
let clock = 1_000_000_000_000
const at = (): number => ++clock
/** A cutoff after every row written so far, and the `now` that gives it with a one-hour window. */
const cutoffNow = () => {
  const cutoff = at() + 1_000
  clock = cutoff + 1_000
  return { cutoff, now: cutoff + HOUR }
}

/** Event retention over the real store: the event log and the delivery log it owes. */
export function retentionSuite(context: StoreContext): void {
  const deliveries = () => new WebhookDeliveriesRepository(context.database.db, context.database.dialect)
  const retention = (now: number, overrides: { batchSize?: number; retentionHours?: number } = {}) =>
    new EventRetention({
      database: context.database,
      events: context.repositories.events,
      deliveries: deliveries(),
      retentionHours: 1,
      now: () => now,
      ...overrides,
    })

  async function storeEvent(organizationId: string, createdAt = at()): Promise<EventRecord> {
    const record: EventRecord = {
      id: newId('event'),
      organizationId,
      sessionId: null,
      type: 'session.status',
      payload: { session: null, data: {} },
      createdAt,
    }
    await context.repositories.events.append([record])
    return record
  }

  /** A session-webhook delivery of `eventId` in `status`, with one recorded attempt. */
  async function storeDelivery(
    organizationId: string,
    eventId: string,
    status: DeliveryStatus,
    createdAt = at(),
  ): Promise<string> {
    const id = newId('delivery')
    await deliveries().createMany([
      {
        id,
        organizationId,
        webhookId: null,
        endpointKey: `ses_x#${id}`,
        sessionId: null,
        eventId,
        eventType: 'session.status',
        body: '{}',
        target: null,
        orderingKey: null,
        seq: createdAt * 1000,
        createdAt,
      },
    ])
    await context.database.db
      .updateTable('webhook_deliveries')
      .set({ status, next_attempt_at: createdAt + 1 })
      .where('id', '=', id)
      .execute()
    await context.database.db
      .insertInto('webhook_attempts')
      .values({ delivery_id: id, number: 1, started_at: createdAt, duration_ms: 5, status_code: 500 })
      .execute()
    return id
  }

  const eventIds = async (organizationId: string) =>
    (await context.repositories.events.list(organizationId, { limit: 100 })).map((e) => e.id).sort()
  const deliveryIds = async (ids: string[]) =>
    ids.length === 0
      ? []
      : (
          await context.database.db
            .selectFrom('webhook_deliveries')
            .select('id')
            .where('id', 'in', ids)
            .execute()
        )
          .map((row) => row.id)
          .sort()
  const attemptCount = async (ids: string[]) =>
    (
      await context.database.db
        .selectFrom('webhook_attempts')
        .select('delivery_id')
        .where('delivery_id', 'in', ids)
        .execute()
    ).length

  describe('event retention', () => {
    it('should prune old events in batches with their settled deliveries and attempts, keeping newer ones', async () => {
      const organizationId = await createOrganization(context)
      const old = []
      for (let i = 0; i < 5; i++) old.push(await storeEvent(organizationId))
      const [delivered, dead] = old
      assert.ok(delivered && dead)
      const settled = [
        await storeDelivery(organizationId, delivered.id, 'delivered'),
        await storeDelivery(organizationId, dead.id, 'dead'),
      ]
      const { cutoff, now } = cutoffNow()
      const fresh = await storeEvent(organizationId, cutoff)

      const result = await retention(now, { batchSize: 2 }).runOnce()

      assert.deepEqual(result, { events: 5, deliveries: 2 })
      assert.deepEqual(await eventIds(organizationId), [fresh.id], 'an event at the cutoff is kept')
      assert.deepEqual(await deliveryIds(settled), [])
      assert.equal(await attemptCount(settled), 0, 'attempts go with their deliveries')
      await context.repositories.events.deleteUnowed([fresh.id])
    })

    it('should keep an event a delivery still owes, with its whole delivery log, until it settles', async () => {
      const organizationId = await createOrganization(context)
      const owed = await storeEvent(organizationId)
      const pending = await storeDelivery(organizationId, owed.id, 'pending')
      const sibling = await storeDelivery(organizationId, owed.id, 'delivered')
      const { now } = cutoffNow()

      assert.deepEqual(await retention(now).runOnce(), { events: 0, deliveries: 0 })
      assert.deepEqual(await eventIds(organizationId), [owed.id])
      assert.deepEqual(await deliveryIds([pending, sibling]), [pending, sibling].sort())

      await context.database.db
        .updateTable('webhook_deliveries')
        .set({ status: 'dead' })
        .where('id', '=', pending)
        .execute()
      assert.deepEqual(await retention(now).runOnce(), { events: 1, deliveries: 2 })
      assert.deepEqual(await eventIds(organizationId), [])
      assert.deepEqual(await deliveryIds([pending, sibling]), [])
    })

    it('should keep an event whose dead delivery was replayed after the batch was chosen', async () => {
      const organizationId = await createOrganization(context)
      const event = await storeEvent(organizationId)
      const delivery = await storeDelivery(organizationId, event.id, 'dead')
      const { cutoff } = cutoffNow()
      const chosen = await context.repositories.events.listCreatedBefore(organizationId, cutoff, {
        limit: 10,
      })
      assert.deepEqual(
        chosen.map((e) => e.id),
        [event.id],
      )
      // The replay lands between choosing and deleting: the delete itself must see it.
      await context.database.db
        .updateTable('webhook_deliveries')
        .set({ status: 'pending' })
        .where('id', '=', delivery)
        .execute()
      const store = deliveries()
      await context.database.db.transaction().execute(async (trx) => {
        assert.equal(await store.deleteSettledByEvents([event.id], trx), 0)
        assert.equal(await context.repositories.events.deleteUnowed([event.id], trx), 0)
      })
      assert.deepEqual(await eventIds(organizationId), [event.id])
      assert.deepEqual(await deliveryIds([delivery]), [delivery])
    })

    it('should keep an event a delivery still refers to, though settled after its log was pruned', async () => {
      const organizationId = await createOrganization(context)
      const event = await storeEvent(organizationId)
      const delivery = await storeDelivery(organizationId, event.id, 'pending')
      const store = deliveries()
      await context.database.db.transaction().execute(async (trx) => {
        assert.equal(await store.deleteSettledByEvents([event.id], trx), 0)
        // It settles now (another Postgres connection): its body may be the event's row.
        await trx
          .updateTable('webhook_deliveries')
          .set({ status: 'dead' })
          .where('id', '=', delivery)
          .execute()
        assert.equal(await context.repositories.events.deleteUnowed([event.id], trx), 0)
      })
      assert.deepEqual(await eventIds(organizationId), [event.id])
      const { now } = cutoffNow()
      assert.deepEqual(
        await retention(now).runOnce(),
        { events: 1, deliveries: 1 },
        'the next pass takes both',
      )
    })

    it('should prune every organization', async () => {
      const first = await createOrganization(context)
      const second = await createOrganization(context)
      await storeEvent(first)
      await storeEvent(second)
      await storeEvent(second)
      const { now } = cutoffNow()
      assert.deepEqual(await retention(now, { batchSize: 1 }).runOnce(), { events: 3, deliveries: 0 })
      assert.deepEqual(await eventIds(first), [])
      assert.deepEqual(await eventIds(second), [])
    })

    it('should prune old settled deliveries whose event is gone, but never a pending one', async () => {
      const organizationId = await createOrganization(context)
      // A deleted session's events are gone; the deliveries it owed are not.
      const delivered = await storeDelivery(organizationId, newId('event'), 'delivered')
      const dead = await storeDelivery(organizationId, newId('event'), 'dead')
      const pending = await storeDelivery(organizationId, newId('event'), 'pending')
      const { cutoff, now } = cutoffNow()
      const recent = await storeDelivery(organizationId, newId('event'), 'delivered', cutoff)

      assert.deepEqual(await retention(now, { batchSize: 1 }).runOnce(), { events: 0, deliveries: 2 })
      assert.deepEqual(await deliveryIds([delivered, dead, pending, recent]), [pending, recent].sort())
      assert.equal(await attemptCount([delivered, dead]), 0)
    })

    it('should keep everything when the retention is 0', async () => {
      const organizationId = await createOrganization(context)
      const kept = await storeEvent(organizationId)
      const delivery = await storeDelivery(organizationId, kept.id, 'delivered')
      const { now } = cutoffNow()
      const forever = retention(now, { retentionHours: 0 })
      assert.equal(forever.enabled, false)
      assert.equal(forever.horizon(), undefined)
      assert.deepEqual(await forever.runOnce(), { events: 0, deliveries: 0 })
      assert.deepEqual(await eventIds(organizationId), [kept.id])
      assert.deepEqual(await deliveryIds([delivery]), [delivery])
      // Tidy up for the suites that share this database.
      await retention(now).runOnce()
    })
  })
}
