import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import {
  NotSentError,
  UndiciWebhookClient,
  type WebhookHttpClient,
  wallClock,
} from '../../src/webhooks/http-client.ts'
import { TargetRefusedError } from '../../src/webhooks/ssrf-guard.ts'
import { ThreadedWebhookClient } from '../../src/webhooks/threaded-http-client.ts'
import { eventually } from '../support/wait.ts'
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
        .catch((e: unknown) => e)) as { name?: string; code?: string }
      // Whichever timer fires first: undici's headers timeout, or the attempt's deadline.
      assert.ok(
        timedOut.code === 'UND_ERR_HEADERS_TIMEOUT' || timedOut.name === 'TimeoutError',
        JSON.stringify(timedOut),
      )
      const refused = (await client
        .post({ url: 'http://127.0.0.1:1/hook', headers: {}, body: '{}', timeoutMs: 2_000 })
        .catch((e: unknown) => e)) as { code?: string }
      assert.equal(refused.code, 'ECONNREFUSED')
    } finally {
      await client.close()
    }
  })

  it('sends what was posted just before it was closed, then closes', async () => {
    receiver.respond = () => 200
    const client = new ThreadedWebhookClient({ allowPrivateTargets: true })
    const seen = receiver.requests.length
    const posted = client.post({ url: receiver.url(), headers: {}, body: '{"n":2}', timeoutMs: 2_000 })
    const closed = client.close()
    assert.equal((await posted).status, 200)
    await closed
    assert.equal(receiver.requests.length, seen + 1)
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

describe('webhook HTTP clients and the attempt deadline', () => {
  /** A receiver that answers every request with `102 Processing`, again and again, and never more. */
  let stalling: Server
  let port = 0
  const sockets = new Set<Socket>()

  before(async () => {
    stalling = createServer((socket) => {
      sockets.add(socket)
      socket.on('data', () => {
        const tick = setInterval(() => {
          if (socket.destroyed) clearInterval(tick)
          else socket.write('HTTP/1.1 102 Processing\r\n\r\n')
        }, 100)
        socket.on('close', () => clearInterval(tick))
      })
    })
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve))
    port = (stalling.address() as { port: number }).port
  })
  after(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => stalling.close(() => resolve()))
  })

  const clients: [string, () => WebhookHttpClient][] = [
    ['on this thread', () => new UndiciWebhookClient()],
    ['on its own thread', () => new ThreadedWebhookClient({ allowPrivateTargets: true })],
  ]
  for (const [where, make] of clients) {
    it(`ends an attempt kept alive by interim answers at its deadline (${where})`, async () => {
      const client = make()
      try {
        const started = performance.now()
        const error = (await client
          .post({ url: `http://127.0.0.1:${port}/hook`, headers: {}, body: '{}', timeoutMs: 300 })
          .then(
            () => assert.fail('a 102 is not an answer'),
            (e: unknown) => e,
          )) as Error
        const took = performance.now() - started
        assert.equal(error.name, 'TimeoutError')
        assert.ok(took >= 290 && took < 1_500, `took ${Math.round(took)} ms`)
      } finally {
        await client.close()
      }
    })
  }

  it('rejects, rather than throws, on a URL it cannot parse', async () => {
    const client = new UndiciWebhookClient()
    try {
      const posting = client.post({ url: 'not a url', headers: {}, body: '{}', timeoutMs: 1_000 })
      await assert.rejects(posting, /Invalid URL/)
    } finally {
      await client.close()
    }
  })
})

describe('webhook HTTP clients queueing, holding and withdrawing requests', () => {
  let receiver: Receiver

  before(async () => {
    receiver = await Receiver.start()
  })
  after(async () => {
    await receiver.stop()
  })

  /** Limits for the client: by default one connection per origin, so a second request waits for the first. */
  type Limits = {
    connectionsPerEndpoint: number
    maxInFlight?: number
    slowAfterMs?: number
    maxOutstanding?: number
    connectionsPerOrigin?: number
  }
  const clients: [string, (limits?: Limits) => WebhookHttpClient][] = [
    ['on this thread', (limits = { connectionsPerEndpoint: 1 }) => new UndiciWebhookClient(limits)],
    [
      'on its own thread',
      (limits = { connectionsPerEndpoint: 1 }) =>
        new ThreadedWebhookClient({ allowPrivateTargets: true, ...limits }),
    ],
  ]
  const post = (
    client: WebhookHttpClient,
    n: number,
    extra: { sendBy?: number; endpoint?: string; timeoutMs?: number } = {},
  ) =>
    client.post({ url: receiver.url(), headers: {}, body: JSON.stringify({ n }), timeoutMs: 2_000, ...extra })
  const unsent = (error: unknown) => error instanceof NotSentError
  const settle = () => new Promise((resolve) => setTimeout(resolve, 100))

  for (const [where, make] of clients) {
    it(`times an attempt from when it is sent, not while it waits for a connection (${where})`, async () => {
      const client = make()
      try {
        receiver.respond = () => ({ status: 200, delayMs: 300 })
        // The second waits ~300 ms, then takes ~300 ms itself: over its 450 ms timeout in all, not once sent.
        const [first, second] = await Promise.all([
          post(client, 1, { timeoutMs: 450 }),
          post(client, 2, { timeoutMs: 450 }),
        ])
        assert.equal(first.status, 200)
        assert.equal(second.status, 200)
        assert.ok(second.durationMs >= 290 && second.durationMs < 450, `took ${second.durationMs} ms`)
      } finally {
        await client.close()
      }
    })

    it(`gives up, unsent, a request that waited longer than it may (${where})`, async () => {
      const client = make()
      try {
        receiver.respond = () => ({ status: 200, delayMs: 400 })
        const seen = receiver.requests.length
        const first = post(client, 1)
        const late = post(client, 2, { sendBy: wallClock() + 100 })
        await assert.rejects(late, unsent)
        assert.equal((await first).status, 200)
        await settle()
        assert.equal(receiver.requests.length, seen + 1, 'the receiver never saw the second')
      } finally {
        await client.close()
      }
    })

    it(`holds an endpoint's requests once one fails, until they are resumed or withdrawn (${where})`, async () => {
      const client = make()
      try {
        let answered = 0
        receiver.respond = () => (answered++ === 0 ? { status: 503, delayMs: 50 } : 200)
        const seen = receiver.requests.length
        const failed = post(client, 1, { endpoint: 'e' })
        const held = [post(client, 2, { endpoint: 'e' }), post(client, 3, { endpoint: 'e' })]
        // Another endpoint's requests are not held.
        const other = post(client, 4, { endpoint: 'f' })
        const failure = await failed
        assert.equal(failure.status, 503)
        assert.equal((await other).status, 200)
        await settle()
        assert.equal(receiver.requests.length, seen + 2, 'held after the failure')
        assert.ok(failure.hold !== undefined)
        client.resume('e', failure.hold)
        assert.deepEqual(
          (await Promise.all(held)).map((response) => response.status),
          [200, 200],
        )

        answered = 0
        const failedAgain = post(client, 5, { endpoint: 'e' })
        const withdrawn = post(client, 6, { endpoint: 'e' })
        assert.equal((await failedAgain).status, 503)
        client.withdraw('e')
        await assert.rejects(withdrawn, unsent)
        assert.equal(receiver.requests.length, seen + 5, 'the withdrawn request was never sent')
      } finally {
        await client.close()
      }
    })
    it(`keeps an endpoint held while a later failure is unseen: only the latest hold lifts it (${where})`, async () => {
      const client = make({ connectionsPerEndpoint: 2, maxInFlight: 2 })
      try {
        receiver.respond = (request) => (JSON.parse(request.body).n < 2 ? { status: 500, delayMs: 50 } : 200)
        const seen = receiver.requests.length
        const [first, second] = [post(client, 0, { endpoint: 'e' }), post(client, 1, { endpoint: 'e' })]
        const third = post(client, 2, { endpoint: 'e' })
        const holds = [(await first).hold, (await second).hold]
        assert.ok(holds[0] !== undefined && holds[1] !== undefined && holds[0] !== holds[1])
        const [earlier, latest] = holds[0] < holds[1] ? [holds[0], holds[1]] : [holds[1], holds[0]]
        client.resume('e', earlier)
        await settle()
        assert.equal(receiver.requests.length, seen + 2, 'still held by the later failure')
        client.resume('e', latest)
        assert.equal((await third).status, 200)
      } finally {
        await client.close()
      }
    })

    it(`lifts the hold with a withdraw that names the latest failure, and only then (${where})`, async () => {
      const client = make({ connectionsPerEndpoint: 1, maxInFlight: 1 })
      try {
        let answered = 0
        receiver.respond = () => (answered++ === 0 ? 503 : 200)
        const failure = await post(client, 0, { endpoint: 'e' })
        const withdrawn = post(client, 1, { endpoint: 'e' })
        client.withdraw('e', (failure.hold ?? 0) + 1)
        await assert.rejects(withdrawn, (error) => error instanceof NotSentError)
        const stillHeld = post(client, 2, { endpoint: 'e' })
        client.withdraw('e', failure.hold)
        await assert.rejects(stillHeld, (error) => error instanceof NotSentError)
        // Lifted: the next goes out at once (a hold no one lifts lets go only after 30 s).
        const started = performance.now()
        assert.equal((await post(client, 3, { endpoint: 'e' })).status, 200)
        assert.ok(performance.now() - started < 2_000, 'not held')
      } finally {
        await client.close()
      }
    })

    it(`holds an endpoint after a 2xx whose body did not arrive in time (${where})`, async () => {
      const client = make({ connectionsPerEndpoint: 1, maxInFlight: 1 })
      try {
        receiver.respond = (request) =>
          JSON.parse(request.body).n === 0 ? { status: 200, body: 'x'.repeat(40), trickleMs: 50 } : 200
        const seen = receiver.requests.length
        const cut = client
          .post({ url: receiver.url(), headers: {}, body: '{"n":0}', timeoutMs: 300, endpoint: 'e' })
          .then(
            () => assert.fail('the body outlasted the timeout'),
            (error: unknown) => error as { name?: string; hold?: number },
          )
        const next = post(client, 1, { endpoint: 'e' })
        const failure = await cut
        assert.equal(failure.name, 'TimeoutError')
        assert.ok(failure.hold !== undefined, 'the cut-off answer put a hold on its endpoint')
        await settle()
        assert.equal(receiver.requests.length, seen + 1, 'held')
        client.resume('e', failure.hold)
        assert.equal((await next).status, 200)
      } finally {
        await client.close()
      }
    })

    it(`gives a connection that frees up to the endpoint with the fewest out, not the oldest request (${where})`, async () => {
      // Never slow here: the one place is freed by an answer, not by a request turning slow.
      const client = make({ connectionsPerEndpoint: 4, maxInFlight: 1, slowAfterMs: 60_000 })
      const quick = await Receiver.start()
      try {
        receiver.respond = () => ({ status: 200, delayMs: 200 })
        const finished: string[] = []
        const slow = [0, 1, 2].map((n) =>
          post(client, n, { endpoint: 'slow' }).then(() => finished.push(`slow ${n}`)),
        )
        const quickOne = client
          .post({ url: quick.url(), headers: {}, body: '{}', timeoutMs: 2_000, endpoint: 'quick' })
          .then(() => finished.push('quick'))
        await Promise.all([...slow, quickOne])
        assert.deepEqual(finished, ['slow 0', 'quick', 'slow 1', 'slow 2'])
      } finally {
        await client.close()
        await quick.stop()
      }
    })

    it(`lets no number of slow receivers take the room a quick one needs (${where})`, async () => {
      // Two places; requests turn slow after 100 ms and stop taking one.
      const client = make({ connectionsPerEndpoint: 2, maxInFlight: 2, slowAfterMs: 100 })
      const quick = await Receiver.start()
      try {
        receiver.respond = () => ({ status: 200, delayMs: 1_500 })
        const seen = receiver.requests.length
        const slow = ['a', 'a', 'b', 'b', 'c', 'c'].map((endpoint, n) => post(client, n, { endpoint }))
        // All six go out, two at a time, as the ones before them turn slow.
        await eventually(() => receiver.requests.length >= seen + 6, 'the slow requests sent', 1_000)
        const started = performance.now()
        const answer = await client.post({
          url: quick.url(),
          headers: {},
          body: '{}',
          timeoutMs: 2_000,
          endpoint: 'quick',
        })
        assert.equal(answer.status, 200)
        assert.ok(performance.now() - started < 500, `waited ${Math.round(performance.now() - started)} ms`)
        assert.equal(receiver.active, 6, 'answered while the slow ones were all out')
        assert.deepEqual(
          (await Promise.all(slow)).map((response) => response.status),
          [200, 200, 200, 200, 200, 200],
        )
      } finally {
        await client.close()
        await quick.stop()
      }
    })

    it(`keeps places at a receiver for a quick endpoint beside slow ones there (${where})`, async () => {
      const client = make({
        connectionsPerEndpoint: 4,
        connectionsPerOrigin: 2,
        maxInFlight: 16,
        slowAfterMs: 100,
      })
      try {
        receiver.respond = (request) =>
          JSON.parse(request.body).n < 100 ? { status: 200, delayMs: 600 } : 200
        // Each slow endpoint's first answer shows it slow: from then on the places kept back are not for it.
        await Promise.all(['a', 'b', 'c'].map((endpoint, n) => post(client, n, { endpoint })))
        const seen = receiver.requests.length
        const slow = ['a', 'a', 'b', 'b', 'c', 'c'].map((endpoint, n) => post(client, 10 + n, { endpoint }))
        await eventually(() => receiver.requests.length >= seen + 2, 'two slow requests sent', 1_000)
        await settle()
        assert.equal(receiver.requests.length, seen + 2, 'the slow endpoints have two connections in all')
        const started = performance.now()
        // The same receiver: before, it waited for one of the slow endpoints' connections.
        assert.equal((await post(client, 100, { endpoint: 'quick' })).status, 200)
        assert.ok(performance.now() - started < 300, `waited ${Math.round(performance.now() - started)} ms`)
        assert.deepEqual(
          (await Promise.all(slow)).map((response) => response.status),
          [200, 200, 200, 200, 200, 200],
        )
      } finally {
        await client.close()
      }
    })

    it(`keeps slow endpoints to maxOutstanding, and places beyond it for quick ones (${where})`, async () => {
      const client = make({ connectionsPerEndpoint: 4, maxInFlight: 8, slowAfterMs: 50, maxOutstanding: 2 })
      try {
        receiver.respond = (request) =>
          JSON.parse(request.body).n < 100 ? { status: 200, delayMs: 600 } : 200
        const seen = receiver.requests.length
        const slow = [0, 1, 2, 3].map((n) => post(client, n, { endpoint: 'a' }))
        await eventually(() => receiver.requests.length >= seen + 2, 'the first two sent', 1_000)
        const started = performance.now()
        await settle()
        assert.equal(receiver.requests.length, seen + 2, 'the other two wait, though the two out are slow')
        // A quick endpoint is light: it takes a place kept back beyond maxOutstanding.
        assert.equal((await post(client, 100, { endpoint: 'quick' })).status, 200)
        assert.ok(performance.now() - started < 400, 'the quick one did not wait for the slow ones')
        await Promise.all(slow)
        assert.ok(performance.now() - started >= 1_000, 'the last two went as the first two were answered')
      } finally {
        await client.close()
      }
    })

    it(`sends nothing once closed (${where})`, async () => {
      const client = make()
      receiver.respond = () => 200
      assert.equal((await post(client, 0, { endpoint: 'e' })).status, 200)
      await client.close()
      await assert.rejects(post(client, 1, { endpoint: 'e' }), unsent)
      await client.close()
    })

    it(`sends a request without an endpoint beside a full load of deliveries (${where})`, async () => {
      const client = make({ connectionsPerEndpoint: 4, maxInFlight: 1 })
      try {
        receiver.respond = (request) =>
          JSON.parse(request.body).n === 0 ? { status: 200, delayMs: 600 } : 200
        const slow = post(client, 0, { endpoint: 'e' })
        const queued = post(client, 1, { endpoint: 'e' })
        const started = performance.now()
        const test = await post(client, 2)
        assert.equal(test.status, 200)
        assert.ok(performance.now() - started < 400, 'not behind the delivery taking the only slot')
        assert.deepEqual([(await slow).status, (await queued).status], [200, 200])
      } finally {
        await client.close()
      }
    })
  }
})
