import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertError, assertInvalidField } from '../support/http-assertions.ts'
import { eventually } from '../support/wait.ts'
import { Receiver } from '../webhooks/receiver.ts'

interface DeliveryView {
  id: string
  eventId: string
  status: string
  eventType: string
  url: string | null
  attempts: number
}

describe("a session's own webhook deliveries", () => {
  let gateway: TestGateway
  let receiver: Receiver
  let sessionId: string
  /** requests the receiver fails before it answers 200 again */
  let failing = 1

  before(async () => {
    gateway = await startTestGateway()
    receiver = await Receiver.start()
    // One failure, then 200s: one dead delivery, and no open circuit to wait for.
    receiver.respond = () => (failing-- > 0 ? 500 : 200)
    // One try in all: the first failure makes a delivery dead.
    const webhooks = [{ url: receiver.url(), events: ['session.status'], retries: { attempts: 1 } }]
    const created = await gateway.request('POST', '/api/v1/sessions', {
      body: { name: 'own-hooks', start: true, config: { webhooks } },
    })
    assert.equal(created.statusCode, 201, created.body)
    sessionId = created.json().id
  })
  after(async () => {
    await gateway.close()
    await receiver.stop()
  })

  const base = () => `/api/v1/sessions/${sessionId}/webhook-deliveries`
  const dead = () =>
    eventually(async () => {
      const page = (await gateway.request('GET', `${base()}?status=dead`)).json()
      return page.items.length > 0 && (page.items as DeliveryView[])
    }, 'a dead delivery')
  let firstDead: DeliveryView | undefined

  it('lists them, by status, and shows one with its attempts', async () => {
    const [first] = await dead()
    assert.ok(first)
    firstDead = first
    assert.equal(first.eventType, 'session.status')
    assert.equal(first.url, receiver.url(), 'which of the session’s webhooks it went to')
    const detail = (await gateway.request('GET', `${base()}/${first.id}`)).json()
    assert.equal(detail.status, 'dead')
    assert.equal(detail.attemptLog.length, 1)
    assert.equal(detail.attemptLog[0].statusCode, 500)
    assert.equal(detail.payload.session.id, sessionId)
    // By name too, as every session route.
    const byName = (await gateway.request('GET', '/api/v1/sessions/own-hooks/webhook-deliveries')).json()
    assert.ok(byName.items.some((item: DeliveryView) => item.id === first.id))
  })

  it('sends a dead one again, with a fresh budget, once the receiver is back', async () => {
    const first = firstDead
    assert.ok(first)
    // The webhook as it is now is what the replay carries: a token rotated since included.
    const webhooks = [
      {
        url: receiver.url(),
        events: ['session.status'],
        retries: { attempts: 1 },
        customHeaders: [{ name: 'X-Token', value: 'rotated' }],
      },
    ]
    const patched = await gateway.request('PATCH', `/api/v1/sessions/${sessionId}`, {
      body: { config: { webhooks } },
    })
    assert.equal(patched.statusCode, 200, patched.body)
    const seen = receiver.requests.length
    const retried = await gateway.request('POST', `${base()}/${first.id}/retry`)
    assert.equal(retried.statusCode, 202, retried.body)
    assert.equal(retried.json().status, 'pending')
    await eventually(
      async () => (await gateway.request('GET', `${base()}/${first.id}`)).json().status === 'delivered',
      'the retried delivery delivered',
    )
    const replayed = receiver.requests
      .slice(seen)
      .find((request) => JSON.parse(request.body).id === first.eventId)
    assert.equal(replayed?.headers['x-token'], 'rotated')
    assertError(await gateway.request('POST', `${base()}/${first.id}/retry`), 409, 'invalid_state')
  })

  it('refuses a retry once the webhook is out of the config, another session’s delivery, and a viewer', async () => {
    failing = 1
    assert.equal((await gateway.request('POST', `/api/v1/sessions/${sessionId}/stop`)).statusCode, 200)
    const [first] = await dead()
    assert.ok(first && first.id !== firstDead?.id)
    const other = await gateway.request('POST', '/api/v1/sessions', { body: { name: 'other-hooks' } })
    const otherId = other.json().id as string
    assertError(
      await gateway.request('GET', `/api/v1/sessions/${otherId}/webhook-deliveries/${first.id}`),
      404,
      'not_found',
    )
    const viewer = (
      await gateway.request('POST', '/api/v1/api-keys', { body: { name: 'viewer', role: 'viewer' } })
    ).json().key as string
    assertError(await gateway.request('GET', base(), { key: viewer }), 403, 'forbidden')

    const patched = await gateway.request('PATCH', `/api/v1/sessions/${sessionId}`, {
      body: { config: { webhooks: [] } },
    })
    assert.equal(patched.statusCode, 200, patched.body)
    const refused = assertError(
      await gateway.request('POST', `${base()}/${first.id}/retry`),
      409,
      'invalid_state',
    )
    assert.match(refused.message, /no longer has a webhook/)
  })

  it('sends every dead one of a time range again, skipping those whose webhook left the config', async () => {
    const since = new Date(Date.now() - 3_600_000).toISOString()
    const retry = () => gateway.request('POST', `${base()}/retry`, { body: { since } })
    const deadCount = (await dead()).length
    // The config has no webhooks now (the test before): nothing to send them to.
    const skipped = await retry()
    assert.equal(skipped.statusCode, 202, skipped.body)
    assert.deepEqual(skipped.json(), { retried: 0, skipped: deadCount })
    const webhooks = [{ url: receiver.url(), events: ['session.status'], retries: { attempts: 1 } }]
    const patched = await gateway.request('PATCH', `/api/v1/sessions/${sessionId}`, {
      body: { config: { webhooks } },
    })
    assert.equal(patched.statusCode, 200, patched.body)
    const retried = await retry()
    assert.equal(retried.statusCode, 202, retried.body)
    assert.deepEqual(retried.json(), { retried: deadCount, skipped: 0 })
    await eventually(async () => {
      const page = (await gateway.request('GET', `${base()}?status=dead`)).json()
      return page.items.length === 0
    }, 'every one delivered')
    assertInvalidField(await gateway.request('POST', `${base()}/retry`, { body: {} }), 'body.since')
  })
})
