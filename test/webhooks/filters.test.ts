import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { newId } from '../../src/domain/ids.ts'
import { type DomainEvent, wireBody } from '../../src/events/catalogue.ts'
import { eventMatches } from '../../src/webhooks/subscriptions.ts'
import { type Harness, newSession, openHarness, sessionWebhooks } from './harness.ts'

describe('event filters', () => {
  it('matches exact types, families and everything', () => {
    assert.equal(eventMatches(['*'], 'message.received'), true)
    assert.equal(eventMatches(['message.*'], 'message.received'), true)
    assert.equal(eventMatches(['message.*'], 'message.status'), true)
    assert.equal(eventMatches(['message.*'], 'message'), false)
    assert.equal(eventMatches(['message.*'], 'messages.received'), false)
    assert.equal(eventMatches(['message.*'], 'session.status'), false)
    assert.equal(eventMatches(['session.status'], 'session.status'), true)
    assert.equal(eventMatches(['session.status'], 'session.qr'), false)
    assert.equal(eventMatches(['group.*', 'session.qr'], 'session.qr'), true)
    assert.equal(eventMatches([], 'session.qr'), false)
  })
})

describe('webhook outbox', () => {
  let harness: Harness

  before(async () => {
    harness = await openHarness()
  })
  after(() => harness.close())

  /** Which webhooks got a delivery for one event. */
  const targetsOf = async (event: DomainEvent): Promise<string[]> =>
    (await harness.rows())
      .filter((row) => row.event_id === event.id)
      .map((row) => row.webhook_id ?? row.endpoint_key)
      .sort()

  it('sees a webhook created, changed or deleted by the very next event', async () => {
    const session = newSession('instant')
    const service = harness.module.service
    const orgId = harness.organizationId
    const hook = await harness.createWebhook({ url: 'https://a.example/instant', sessionIds: [session.id] })
    assert.deepEqual(await targetsOf(await harness.emit('message.received', { session })), [hook.id])
    await service.update(orgId, hook.id, { events: ['session.*'] })
    assert.deepEqual(await targetsOf(await harness.emit('message.received', { session })), [])
    await service.update(orgId, hook.id, { events: ['*'], enabled: false })
    assert.deepEqual(await targetsOf(await harness.emit('message.received', { session })), [])
    await service.update(orgId, hook.id, { enabled: true })
    assert.deepEqual(await targetsOf(await harness.emit('message.received', { session })), [hook.id])
    await service.delete(orgId, hook.id)
    assert.deepEqual(await targetsOf(await harness.emit('message.received', { session })), [])
  })

  it('enqueues one delivery per matching endpoint, by event pattern and session filter', async () => {
    const sales = newSession('sales')
    const support = newSession('support')
    const all = await harness.createWebhook({ url: 'https://a.example/all' })
    const messages = await harness.createWebhook({ url: 'https://a.example/m', events: ['message.*'] })
    const status = await harness.createWebhook({ url: 'https://a.example/s', events: ['session.status'] })
    const salesOnly = await harness.createWebhook({
      url: 'https://a.example/sales',
      events: ['message.*', 'session.*'],
      sessionIds: [sales.id],
    })
    const disabled = await harness.createWebhook({ url: 'https://a.example/off', enabled: false })

    assert.deepEqual(
      await targetsOf(await harness.emit('message.received', { session: sales })),
      [all.id, messages.id, salesOnly.id].sort(),
    )
    assert.deepEqual(
      await targetsOf(await harness.emit('message.status', { session: support })),
      [all.id, messages.id].sort(),
    )
    assert.deepEqual(
      await targetsOf(await harness.emit('session.status', { session: sales })),
      [all.id, status.id, salesOnly.id].sort(),
    )
    assert.deepEqual(await targetsOf(await harness.emit('session.qr', { session: support })), [all.id])
    const orgWide = await harness.emit('history.sync', { session: null })
    assert.deepEqual(await targetsOf(orgWide), [all.id], 'an event without a session skips session filters')
    assert.ok(!(await harness.rows()).some((row) => row.webhook_id === disabled.id))

    for (const webhook of [all, messages, status, salesOnly, disabled]) {
      await harness.module.service.delete(harness.organizationId, webhook.id)
    }
  })

  it("enqueues to the event's session webhooks by their own event filters", async () => {
    const session = newSession()
    const webhooks = sessionWebhooks(harness.secretBox, [
      { url: 'https://s.example/messages', events: ['message.*'] },
      { url: 'https://s.example/all' },
      { url: 'https://s.example/all' },
    ])
    const message = await harness.emit('message.received', { session, sessionWebhooks: webhooks })
    const status = await harness.emit('session.status', { session, sessionWebhooks: webhooks })
    const rows = await harness.rows()
    const forMessage = rows.filter((row) => row.event_id === message.id)
    const forStatus = rows.filter((row) => row.event_id === status.id)
    assert.equal(forMessage.length, 2, 'a URL listed twice is one endpoint')
    assert.equal(forStatus.length, 1)
    for (const row of [...forMessage, ...forStatus]) {
      assert.equal(row.webhook_id, null)
      assert.ok(row.endpoint_key.startsWith(`${session.id}#`))
      assert.equal(JSON.parse(row.target ?? '{}').url.startsWith('https://s.example/'), true)
    }
    assert.equal(forStatus[0]?.body, '', 'stored once, with the event')
    assert.equal(
      await harness.module.deliveries.getBody(forStatus[0]?.id ?? ''),
      wireBody(status),
      'the body is the event itself, byte for byte',
    )
  })

  it('writes nothing when the transaction that stored the event rolls back', async () => {
    const webhook = await harness.createWebhook({ url: 'https://a.example/rollback' })
    const event = {
      id: newId('event'),
      type: 'session.status',
      organizationId: harness.organizationId,
      session: newSession(),
      timestamp: harness.clock.now(),
      data: {},
    } as unknown as DomainEvent
    await assert.rejects(
      harness.database.db.transaction().execute(async (trx) => {
        assert.equal(await harness.module.outbox.enqueueDeliveries(event, [], trx), 1)
        throw new Error('the state change failed')
      }),
      /state change failed/,
    )
    assert.deepEqual(await targetsOf(event), [])
    // The same event enqueued twice is delivered once.
    await harness.database.db.transaction().execute(async (trx) => {
      await harness.module.outbox.enqueueDeliveries([event, event], [], trx)
    })
    assert.deepEqual(await targetsOf(event), [webhook.id])
    await harness.module.service.delete(harness.organizationId, webhook.id)
  })

  it("does not enqueue for another organization's webhooks", async () => {
    const webhook = await harness.createWebhook({ url: 'https://a.example/mine' })
    const foreign = {
      id: newId('event'),
      type: 'session.status',
      organizationId: newId('organization'),
      session: null,
      timestamp: harness.clock.now(),
      data: {},
    } as unknown as DomainEvent
    await harness.database.db.transaction().execute(async (trx) => {
      assert.equal(await harness.module.outbox.enqueueDeliveries(foreign, [], trx), 0)
    })
    await harness.module.service.delete(harness.organizationId, webhook.id)
  })
})
