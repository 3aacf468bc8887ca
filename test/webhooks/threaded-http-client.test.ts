import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { TargetRefusedError } from '../../src/webhooks/ssrf-guard.ts'
import { ThreadedWebhookClient } from '../../src/webhooks/threaded-http-client.ts'
import { Receiver } from './receiver.ts'

describe('the webhook HTTP client on its own thread', () => {
  let receiver: Receiver

  before(async () => {
    receiver = await Receiver.start()
    // Each answer names the request it answers, so a mix-up between requests would show.
    receiver.respond = (request) => ({ status: 200 + (JSON.parse(request.body).n % 3), body: request.body })
  })
  after(async () => {
    await receiver.stop()
  })

  it('answers each of many concurrent requests with its own response', async () => {
    const client = new ThreadedWebhookClient({ allowPrivateTargets: true })
    try {
      const responses = await Promise.all(
        Array.from({ length: 60 }, (_, n) =>
          client.post({
            url: receiver.url(),
            headers: { 'content-type': 'application/json', 'x-n': String(n) },
            body: JSON.stringify({ n }),
            timeoutMs: 5_000,
          }),
        ),
      )
      responses.forEach((response, n) => {
        assert.equal(response.status, 200 + (n % 3))
        assert.deepEqual(JSON.parse(response.body), { n })
      })
      const headersSeen = receiver.requests.map((request) => request.headers['x-n']).sort()
      assert.equal(new Set(headersSeen).size, 60)
    } finally {
      await client.close()
    }
  })

  it("refuses a loopback target in the thread's socket lookup, as the guard's own error", async () => {
    const client = new ThreadedWebhookClient({ allowPrivateTargets: false })
    const before = receiver.requests.length
    try {
      const port = new URL(receiver.url()).port
      const error = await client
        .post({ url: `http://localhost:${port}/hook`, headers: {}, body: '{}', timeoutMs: 2_000 })
        .then(
          () => assert.fail('the request went through'),
          (e: unknown) => e,
        )
      assert.ok(error instanceof TargetRefusedError, String(error))
      assert.match(error.message, /loopback/)
      assert.equal(receiver.requests.length, before)
    } finally {
      await client.close()
    }
  })

  it('carries timeouts and connection failures across with their codes', async () => {
    const client = new ThreadedWebhookClient({ allowPrivateTargets: true })
    try {
      receiver.respond = () => ({ status: 200, delayMs: 3_000 })
      const timedOut = (await client
        .post({ url: receiver.url(), headers: {}, body: '{"n":0}', timeoutMs: 200 })
        .catch((e: unknown) => e)) as { code?: string }
      assert.equal(timedOut.code, 'UND_ERR_HEADERS_TIMEOUT')
      const refused = (await client
        .post({ url: 'http://127.0.0.1:1/hook', headers: {}, body: '{}', timeoutMs: 2_000 })
        .catch((e: unknown) => e)) as { code?: string }
      assert.equal(refused.code, 'ECONNREFUSED')
    } finally {
      await client.close()
    }
  })

  it('refuses requests once closed', async () => {
    receiver.respond = () => 200
    const client = new ThreadedWebhookClient({ allowPrivateTargets: true })
    await client.post({ url: receiver.url(), headers: {}, body: '{"n":1}', timeoutMs: 2_000 })
    await client.close()
    await assert.rejects(
      client.post({ url: receiver.url(), headers: {}, body: '{"n":1}', timeoutMs: 2_000 }),
      /closed/,
    )
  })
})
