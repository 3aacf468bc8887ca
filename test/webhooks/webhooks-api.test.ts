import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, it } from 'node:test'
import { assertError, assertInvalidField } from '../support/http-assertions.ts'
import { type ApiServer, startApiServer } from './api-server.ts'
import { newSession } from './harness.ts'
import { Receiver } from './receiver.ts'

interface Circuit {
  state: string
  consecutiveFailures: number
  openSince: string | null
  nextProbeAt: string | null
}

interface WebhookBody {
  id: string
  url: string
  events: string[]
  sessionIds: string[]
  secret?: string
  secretSet: boolean
  enabled: boolean
  disabledReason: string | null
  retries: { policy: string; delaySeconds: number; attempts: number }
  circuit: Circuit
}

describe('webhooks API', () => {
  let api: ApiServer
  let receiver: Receiver

  before(async () => {
    api = await startApiServer()
    receiver = await Receiver.start()
  })
  after(async () => {
    await api.close()
    await receiver.stop()
  })
  beforeEach(() => {
    receiver.requests.length = 0
    receiver.respond = () => 200
  })

  const create = async (body: Record<string, unknown> = {}): Promise<WebhookBody> => {
    const response = await api.request('POST', '/api/v1/webhooks', { body: { url: receiver.url(), ...body } })
    assert.equal(response.statusCode, 201, response.body)
    return response.json() as WebhookBody
  }

  /** One dead delivery of a fresh webhook (its only try answered 500). */
  const deadDelivery = async () => {
    const webhook = await create({ retries: { policy: 'constant', delaySeconds: 1, attempts: 1 } })
    receiver.respond = () => 500
    await api.harness.emit('message.received', { session: newSession() })
    await api.harness.module.worker.runOnce()
    const list = await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries`)
    const [delivery] = (list.json() as { items: { id: string; status: string }[] }).items
    assert.equal(delivery?.status, 'dead')
    return { webhook, delivery }
  }

  describe('happy', () => {
    it('creates a webhook whose generated secret is shown once and never again', async () => {
      const created = await create({ events: ['message.*', 'session.status'] })
      assert.match(created.id, /^whk_/)
      assert.match(created.secret ?? '', /^whsec_/)
      assert.equal(created.secretSet, true)
      assert.deepEqual(created.retries, { policy: 'exponential', delaySeconds: 2, attempts: 15 })
      const read = await api.request('GET', `/api/v1/webhooks/${created.id}`)
      const list = await api.request('GET', '/api/v1/webhooks')
      for (const response of [read, list]) {
        assert.equal(response.statusCode, 200)
        assert.ok(!response.body.includes(created.secret as string), 'the secret is not returned')
        assert.ok(!response.body.includes('"secret"'))
      }
      const [row] = await api.harness.database.db
        .selectFrom('webhooks')
        .select('secret')
        .where('id', '=', created.id)
        .execute()
      assert.ok(row && row.secret !== created.secret && row.secret.startsWith('v1.'), 'stored sealed')
    })

    it('does not echo a secret the caller chose', async () => {
      const created = await create({ secret: 'legacy-secret-value', signatureScheme: 'sha256' })
      assert.equal(created.secret, undefined)
      assert.equal(created.secretSet, true)
    })

    it('takes sessions by id or name and keeps their ids', async () => {
      const { sales } = api.sessions
      const created = await create({ sessionIds: ['sales', sales.id] })
      assert.deepEqual(created.sessionIds, [sales.id])
      const patched = await api.request('PATCH', `/api/v1/webhooks/${created.id}`, {
        body: { sessionIds: [] },
      })
      assert.deepEqual((patched.json() as WebhookBody).sessionIds, [])
      const named = await api.request('PATCH', `/api/v1/webhooks/${created.id}`, {
        body: { sessionIds: ['sales'] },
      })
      assert.deepEqual((named.json() as WebhookBody).sessionIds, [sales.id])
      // Its session deleted, the list read back is taken as it was; a new entry still must exist.
      const deleted = api.deleteSession(sales.id)
      try {
        const resent = await api.request('PATCH', `/api/v1/webhooks/${created.id}`, {
          body: { sessionIds: [sales.id], description: 'resent' },
        })
        assert.equal(resent.statusCode, 200, resent.body)
        assert.deepEqual((resent.json() as WebhookBody).sessionIds, [sales.id])
        const added = await api.request('PATCH', `/api/v1/webhooks/${created.id}`, {
          body: { sessionIds: [sales.id, 'sales'] },
        })
        assert.deepEqual(
          assertError(added, 400, 'invalid_request').details?.map((detail) => detail.path),
          ['body.sessionIds.1'],
        )
      } finally {
        deleted.restore()
      }
    })

    it('updates fields, merges retries and clears the reason when enabled again', async () => {
      const created = await create()
      await api.harness.module.webhooks.disable(created.id, 'the receiver answered 410 Gone', Date.now())
      const response = await api.request('PATCH', `/api/v1/webhooks/${created.id}`, {
        body: { events: ['group.*'], retries: { attempts: 3 }, enabled: true },
      })
      assert.equal(response.statusCode, 200, response.body)
      const updated = response.json() as WebhookBody
      assert.deepEqual(updated.events, ['group.*'])
      assert.deepEqual(updated.retries, { policy: 'exponential', delaySeconds: 2, attempts: 3 })
      assert.equal(updated.enabled, true)
      assert.equal(updated.disabledReason, null)
    })

    it('deletes a webhook', async () => {
      const created = await create()
      assert.equal((await api.request('DELETE', `/api/v1/webhooks/${created.id}`)).statusCode, 204)
      assertError(await api.request('GET', `/api/v1/webhooks/${created.id}`), 404, 'not_found')
    })

    it('sends a signed test event and reports the outcome', async () => {
      const created = await create()
      const ok = await api.request('POST', `/api/v1/webhooks/${created.id}/test`)
      assert.equal(ok.statusCode, 200, ok.body)
      const result = ok.json() as {
        delivered: boolean
        statusCode: number
        durationMs: number
        eventId: string
      }
      assert.equal(result.delivered, true)
      assert.equal(result.statusCode, 200)
      assert.ok(result.durationMs >= 0)
      const [request] = receiver.requests
      assert.equal(JSON.parse(request?.body ?? '{}').type, 'webhook.test')
      assert.equal(request?.headers['webhook-id'], result.eventId)
      assert.match(String(request?.headers['webhook-signature']), /^v1,/)

      receiver.respond = () => ({ status: 503, body: 'maintenance' })
      const failed = (await api.request('POST', `/api/v1/webhooks/${created.id}/test`)).json() as {
        delivered: boolean
        statusCode: number
        response: string
      }
      assert.deepEqual([failed.delivered, failed.statusCode, failed.response], [false, 503, 'maintenance'])
    })

    it('lists deliveries by status with a cursor, shows attempts, and replays a dead one', async () => {
      const { webhook, delivery } = await deadDelivery()
      const dead = await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries?status=dead&limit=1`)
      assert.equal((dead.json() as { items: unknown[] }).items.length, 1)
      const pending = await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries?status=pending`)
      assert.deepEqual((pending.json() as { items: unknown[] }).items, [])

      const detail = await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries/${delivery!.id}`)
      const body = detail.json() as { attemptLog: { statusCode: number }[]; payload: { type: string } }
      assert.deepEqual(
        body.attemptLog.map((a) => a.statusCode),
        [500],
      )
      assert.equal(body.payload.type, 'message.received')

      receiver.respond = () => 200
      const retried = await api.request(
        'POST',
        `/api/v1/webhooks/${webhook.id}/deliveries/${delivery!.id}/retry`,
      )
      assert.equal(retried.statusCode, 202, retried.body)
      assert.equal((retried.json() as { status: string }).status, 'pending')
      await api.harness.module.worker.runOnce()
      const after = await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries/${delivery!.id}`)
      assert.equal((after.json() as { status: string }).status, 'delivered')
    })

    it("shows its endpoint's circuit: closed, open after failures in a row until its probe, closed again", async () => {
      const webhook = await create({ retries: { policy: 'constant', delaySeconds: 1, attempts: 50 } })
      const circuit = async () => {
        const response = await api.request('GET', `/api/v1/webhooks/${webhook.id}`)
        const listed = (await api.request('GET', '/api/v1/webhooks')).json() as {
          items: { id: string; circuit: Circuit }[]
        }
        const body = response.json() as { circuit: Circuit }
        assert.deepEqual(listed.items.find((item) => item.id === webhook.id)?.circuit, body.circuit)
        return body.circuit
      }
      const closed = { state: 'closed', consecutiveFailures: 0, openSince: null, nextProbeAt: null }
      assert.deepEqual(webhook.circuit, closed)
      receiver.respond = () => 500
      for (let i = 0; i < 5; i++) await api.harness.emit('message.received', { session: newSession() })
      await api.harness.module.worker.runOnce()
      const openedAt = api.harness.clock.now()
      assert.deepEqual(await circuit(), {
        state: 'open',
        consecutiveFailures: 5,
        openSince: new Date(openedAt).toISOString(),
        nextProbeAt: new Date(openedAt + 30_000).toISOString(),
      })
      // Its pending deliveries say so too: none is tried before the probe, though the four that
      // failed before the fifth opened the circuit were scheduled for a second later.
      const pending = await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries?status=pending`)
      const items = (pending.json() as { items: { id: string; nextAttemptAt: string }[] }).items
      assert.deepEqual(
        items.map((item) => item.nextAttemptAt),
        Array(5).fill(new Date(openedAt + 30_000).toISOString()),
      )
      const one = await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries/${items[4]?.id}`)
      assert.equal(
        (one.json() as { nextAttemptAt: string }).nextAttemptAt,
        new Date(openedAt + 30_000).toISOString(),
      )
      api.harness.clock.advance(30_000)
      assert.deepEqual(await circuit(), {
        state: 'half-open',
        consecutiveFailures: 5,
        openSince: new Date(openedAt).toISOString(),
        nextProbeAt: null,
      })
      receiver.respond = () => 200
      await api.harness.module.worker.runOnce()
      assert.deepEqual(await circuit(), closed)
    })

    it('sends every dead delivery of a time range again in one call', async () => {
      const { webhook, delivery } = await deadDelivery()
      const url = `/api/v1/webhooks/${webhook.id}/deliveries/retry`
      const after = (ms: number) => new Date(api.harness.clock.now() + ms).toISOString()
      const later = await api.request('POST', url, { body: { since: after(60_000) } })
      assert.equal(later.statusCode, 202, later.body)
      assert.deepEqual(later.json(), { retried: 0 }, 'none was created after that')
      receiver.respond = () => 200
      const retried = await api.request('POST', url, { body: { since: after(-3_600_000) } })
      assert.equal(retried.statusCode, 202, retried.body)
      assert.deepEqual(retried.json(), { retried: 1 })
      await api.harness.module.worker.runOnce()
      const shown = await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries/${delivery!.id}`)
      assert.equal((shown.json() as { status: string }).status, 'delivered')
    })

    it('shows a delivered delivery whose event is gone (its session deleted) with a null payload', async () => {
      const webhook = await create()
      const session = newSession()
      const event = await api.harness.emit('message.received', { session })
      await api.harness.module.worker.runOnce()
      const delivery = (await api.harness.rows()).find(
        (row) => row.webhook_id === webhook.id && row.event_id === event.id,
      )
      const url = `/api/v1/webhooks/${webhook.id}/deliveries/${delivery!.id}`
      assert.equal(
        ((await api.request('GET', url)).json() as { payload: { id: string } }).payload.id,
        event.id,
      )

      await api.harness.database.db.deleteFrom('events').where('session_id', '=', session.id).execute()
      const gone = await api.request('GET', url)
      assert.equal(gone.statusCode, 200, gone.body)
      const body = gone.json() as { status: string; payload: unknown }
      assert.deepEqual([body.status, body.payload], ['delivered', null])
    })

    it('pages deliveries with a cursor', async () => {
      const webhook = await create()
      for (let i = 0; i < 3; i++) await api.harness.emit('message.received', { session: newSession() })
      const seen: string[] = []
      let cursor: string | null = null
      do {
        const query: string = cursor ? `&cursor=${cursor}` : ''
        const page = (
          await api.request('GET', `/api/v1/webhooks/${webhook.id}/deliveries?limit=2${query}`)
        ).json() as {
          items: { id: string }[]
          nextCursor: string | null
        }
        seen.push(...page.items.map((item) => item.id))
        cursor = page.nextCursor
      } while (cursor)
      assert.equal(new Set(seen).size, 3)
      await api.harness.module.worker.runOnce()
    })
  })

  describe('errors', () => {
    it('rejects custom headers that would override ours', async () => {
      for (const name of [
        'Webhook-Signature',
        'webhook-id',
        'Content-Type',
        'User-Agent',
        'X-Webhook-Hmac',
        'Host',
      ]) {
        const response = await api.request('POST', '/api/v1/webhooks', {
          body: {
            url: receiver.url(),
            customHeaders: [
              { name: 'X-Fine', value: '1' },
              { name, value: 'x' },
            ],
          },
        })
        const error = assertInvalidField(response, 'body.customHeaders.1.name')
        assert.match(error.message, new RegExp(name))
      }
    })

    it('rejects a URL with credentials in it, and says when one is too long', async () => {
      const port = new URL(receiver.url()).port
      const withCredentials = await api.request('POST', '/api/v1/webhooks', {
        body: { url: `http://user:pass@127.0.0.1:${port}/creds` },
      })
      assert.match(assertInvalidField(withCredentials, 'body.url').message, /customHeaders \(Authorization\)/)
      const tooLong = await api.request('POST', '/api/v1/webhooks', {
        body: { url: `${receiver.url()}?${'a'.repeat(3000)}` },
      })
      assert.match(assertInvalidField(tooLong, 'body.url').message, /at most 2048 characters/)
      for (const url of ['not a url', 'https://exa mple.com/', 'http://[::1']) {
        const unparsable = await api.request('POST', '/api/v1/webhooks', { body: { url } })
        assert.match(assertInvalidField(unparsable, 'body.url').message, /must be an http\(s\) URL/)
      }
    })

    it('rejects custom headers no request could carry: line breaks, non-ASCII, Expect, a name twice', async () => {
      const cases: [{ name: string; value: string }[], string, RegExp][] = [
        [[{ name: 'X-A', value: 'v\r\nX-Injected: 1' }], 'body.customHeaders.0.value', /printable ASCII/],
        [[{ name: 'X-A', value: 'ok ✓' }], 'body.customHeaders.0.value', /printable ASCII/],
        [[{ name: 'Expect', value: '100-continue' }], 'body.customHeaders.0.name', /Expect/],
        [
          [
            { name: 'X-A', value: '1' },
            { name: 'x-a', value: '2' },
          ],
          'body.customHeaders.1.name',
          /given twice/,
        ],
      ]
      for (const [customHeaders, path, reason] of cases) {
        const response = await api.request('POST', '/api/v1/webhooks', {
          body: { url: receiver.url(), customHeaders },
        })
        assert.match(assertInvalidField(response, path).message, reason)
      }
    })

    it('rejects a standard-scheme secret not in the whsec_ form, and a scheme switch that would need one', async () => {
      assertInvalidField(
        await api.request('POST', '/api/v1/webhooks', {
          body: { url: receiver.url(), secret: 'plain-secret' },
        }),
        'body.secret',
      )
      const legacy = await create({ secret: 'plain-secret', signatureScheme: 'hmac-sha512' })
      assertInvalidField(
        await api.request('PATCH', `/api/v1/webhooks/${legacy.id}`, {
          body: { signatureScheme: 'standard' },
        }),
        'body.secret',
      )
    })

    it('rejects bad URLs, event patterns, session ids and empty updates', async () => {
      assertInvalidField(
        await api.request('POST', '/api/v1/webhooks', { body: { url: 'ftp://x.example/' } }),
        'body.url',
      )
      assertInvalidField(
        await api.request('POST', '/api/v1/webhooks', {
          body: { url: receiver.url(), events: ['message.**'] },
        }),
        'body.events.0',
      )
      // A typo would silently subscribe to nothing.
      assertInvalidField(
        await api.request('POST', '/api/v1/webhooks', {
          body: { url: receiver.url(), events: ['message.*', 'message.recieved'] },
        }),
        'body.events.1',
      )
      // So would a session that is not the organization's, or a misspelt name.
      const unknown = await api.request('POST', '/api/v1/webhooks', {
        body: { url: receiver.url(), sessionIds: ['sales', 'sale', api.sessions.otherOrganizations.id] },
      })
      assert.deepEqual(
        assertError(unknown, 400, 'invalid_request').details?.map((detail) => detail.path),
        ['body.sessionIds.1', 'body.sessionIds.2'],
      )
      const created = await create()
      assertError(
        await api.request('PATCH', `/api/v1/webhooks/${created.id}`, { body: {} }),
        400,
        'invalid_request',
      )
      assertError(
        await api.request('GET', `/api/v1/webhooks/${created.id}/deliveries?cursor=garbage`),
        400,
        'invalid_request',
      )
    })

    it('answers 404 for unknown webhooks and deliveries', async () => {
      assertError(await api.request('GET', '/api/v1/webhooks/whk_missing'), 404, 'not_found')
      assertError(await api.request('POST', '/api/v1/webhooks/whk_missing/test'), 404, 'not_found')
      const created = await create()
      assertError(
        await api.request('POST', `/api/v1/webhooks/${created.id}/deliveries/dlv_missing/retry`),
        404,
        'not_found',
      )
    })

    it('refuses a bulk retry without a valid range, of an unknown webhook, or below the admin role', async () => {
      const created = await create()
      const url = `/api/v1/webhooks/${created.id}/deliveries/retry`
      assertInvalidField(await api.request('POST', url, { body: {} }), 'body.since')
      assertInvalidField(await api.request('POST', url, { body: { since: 'yesterday' } }), 'body.since')
      const backwards = { since: '2026-12-05T10:00:00Z', until: '2026-12-05T09:00:00Z' }
      assert.match(
        assertInvalidField(await api.request('POST', url, { body: backwards }), 'body.until').message,
        /after since/,
      )
      // A malformed until is said to be malformed, not also to come before since.
      const malformed = await api.request('POST', url, {
        body: { since: '2026-12-05T10:00:00Z', until: 'later' },
      })
      assert.deepEqual(
        assertInvalidField(malformed, 'body.until').details?.map((detail) => detail.path),
        ['body.until'],
      )
      // A misspelt field would widen the range: refused, not ignored.
      const misspelt = await api.request('POST', url, {
        body: { since: '2026-12-05T10:00:00Z', untill: '2026-12-05T11:00:00Z' },
      })
      assert.match(assertError(misspelt, 400, 'invalid_request').message, /untill/)
      assertError(
        await api.request('POST', '/api/v1/webhooks/whk_missing/deliveries/retry', {
          body: { since: '2026-12-05T10:00:00Z' },
        }),
        404,
        'not_found',
      )
    })

    it('refuses to retry a delivery that is not dead, or of a disabled webhook', async () => {
      const { webhook, delivery } = await deadDelivery()
      const url = `/api/v1/webhooks/${webhook.id}/deliveries/${delivery!.id}/retry`
      await api.request('PATCH', `/api/v1/webhooks/${webhook.id}`, { body: { enabled: false } })
      assertError(await api.request('POST', url), 409, 'invalid_state')
      await api.request('PATCH', `/api/v1/webhooks/${webhook.id}`, { body: { enabled: true } })
      assert.equal((await api.request('POST', url)).statusCode, 202)
      assertError(await api.request('POST', url), 409, 'invalid_state')
      receiver.respond = () => 200
      await api.harness.module.worker.runOnce()
    })
  })

  describe('security', () => {
    const routes = (id: string): ['GET' | 'POST' | 'PATCH' | 'DELETE', string, unknown?][] => [
      ['POST', '/api/v1/webhooks', { url: 'https://x.example/' }],
      ['GET', '/api/v1/webhooks'],
      ['GET', `/api/v1/webhooks/${id}`],
      ['PATCH', `/api/v1/webhooks/${id}`, { enabled: false }],
      ['DELETE', `/api/v1/webhooks/${id}`],
      ['GET', `/api/v1/webhooks/${id}/deliveries`],
      ['GET', `/api/v1/webhooks/${id}/deliveries/dlv_x`],
      ['POST', `/api/v1/webhooks/${id}/deliveries/dlv_x/retry`],
      ['POST', `/api/v1/webhooks/${id}/test`],
    ]

    it('rejects every route without a key, with a wrong key, and below the admin role', async () => {
      const { id } = await create()
      for (const [method, url, body] of routes(id)) {
        assertError(await api.request(method, url, { body, key: null }), 401, 'unauthorized')
        assertError(await api.request(method, url, { body, key: 'wag_wrong' }), 401, 'unauthorized')
        assertError(await api.request(method, url, { body, key: api.keys.operator }), 403, 'forbidden')
        assertError(await api.request(method, url, { body, key: api.keys.scopedAdmin }), 403, 'forbidden')
      }
      assert.equal(receiver.requests.length, 0)
    })

    it("never shows or touches another organization's webhooks", async () => {
      const { id } = await create()
      const key = api.keys.otherOrganization
      const list = await api.request('GET', '/api/v1/webhooks', { key })
      assert.deepEqual((list.json() as { items: unknown[] }).items, [])
      for (const [method, url, body] of routes(id).slice(2)) {
        assertError(await api.request(method, url, { body, key }), 404, 'not_found')
      }
      assert.equal((await api.request('GET', `/api/v1/webhooks/${id}`)).statusCode, 200, 'still there')
      assert.equal(receiver.requests.length, 0)
    })
  })
})
