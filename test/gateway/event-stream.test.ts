import assert from 'node:assert/strict'
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { EventSource } from 'undici'
import WebSocket from 'ws'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertError, assertInvalidField } from '../support/http-assertions.ts'
import { waitForStatus } from '../support/sessions.ts'
import { databaseFile } from '../support/sqlite-file.ts'
import { eventually } from '../support/wait.ts'

interface Envelope {
  id: string
  type: string
  session: { id: string; name: string } | null
  data: Record<string, unknown>
}

describe('the live event stream', () => {
  let gateway: TestGateway
  let base: string

  before(async () => {
    gateway = await startTestGateway({ tuning: { streamKeyCheckIntervalMs: 200 } })
    base = (await gateway.app.listen()).replace('http', 'ws')
  })
  after(async () => {
    await gateway.close()
  })

  function open(query: string, headers: Record<string, string> = { 'x-api-key': gateway.adminKey }) {
    const socket = new WebSocket(`${base}/api/v1/events/stream${query}`, { headers })
    const received: Envelope[] = []
    socket.on('message', (data) => received.push(JSON.parse(String(data))))
    const opened = new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('unexpected-response', (_request, response) =>
        reject(new Error(`HTTP ${response.statusCode}`)),
      )
      socket.once('error', reject)
    })
    return { socket, received, opened }
  }
  /** The id of a session's latest session.status event, once there is one: a cursor to resume after. */
  const latestStatusEvent = (sessionId: string) =>
    eventually(async () => {
      const list = (
        await gateway.request('GET', `/api/v1/events?session=${sessionId}&types=session.status`)
      ).json()
      return list.items[0]?.id as string | undefined
    }, 'an event to resume after')
  const create = (name: string, start = false) =>
    gateway.request('POST', '/api/v1/sessions', { body: { name, sandbox: true, start } })

  it('streams session events over a WebSocket, filtered by type', async () => {
    const stream = open('?types=session.*')
    await stream.opened
    const created = (await create('streamed-1', true)).json()
    const statuses = await eventually(() => {
      const mine = stream.received.filter((e) => e.session?.id === created.id)
      return mine.some((e) => e.type === 'session.qr') && mine
    }, 'status and QR events')
    assert.ok(statuses.every((e) => e.type.startsWith('session.')))
    assert.equal(statuses[0]?.type, 'session.status')
    assert.match(statuses[0]?.id ?? '', /^evt_/)
    stream.socket.close()
  })

  it('resumes after an event id, replaying what came after it from the store', async () => {
    const first = (await create('resume-1', true)).json()
    const cursor = await latestStatusEvent(first.id)
    const later = (await create('resume-2')).json()
    await gateway.request('POST', `/api/v1/sessions/${later.id}/start`)
    const stream = open(`?after=${cursor}&types=session.status`)
    await stream.opened
    const replayed = await eventually(
      () => stream.received.filter((e) => e.session?.id === later.id).length >= 1 && stream.received,
      'replayed events',
    )
    assert.ok(!replayed.some((e) => e.id === cursor), 'the cursor itself is not repeated')
    assert.equal(new Set(replayed.map((e) => e.id)).size, replayed.length, 'no event twice')
    stream.socket.close()
  })

  it('streams Server-Sent Events to plain HTTP clients', async () => {
    const controller = new AbortController()
    const response = await fetch(`${base.replace('ws', 'http')}/api/v1/events/stream?types=session.status`, {
      headers: { 'x-api-key': gateway.adminKey, accept: 'text/event-stream' },
      signal: controller.signal,
    })
    assert.equal(response.headers.get('content-type'), 'text/event-stream')
    const created = (await create('sse-1', true)).json()
    const reader = response.body?.getReader()
    let text = ''
    while (reader && !text.includes(created.id)) {
      const { value, done } = await reader.read()
      if (done) break
      text += Buffer.from(value).toString()
    }
    assert.match(text, /event: session\.status/)
    assert.match(text, new RegExp(created.id))
    controller.abort()
  })

  /** An SSE stream read as text; `until` resolves once the text matches, or the stream ended. */
  async function sse(query: string, headers: Record<string, string>) {
    const controller = new AbortController()
    const response = await fetch(`${base.replace('ws', 'http')}/api/v1/events/stream${query}`, {
      headers: { accept: 'text/event-stream', ...headers },
      signal: controller.signal,
    })
    const reader = response.body?.getReader()
    let text = ''
    let ended = false
    const until = async (pattern: RegExp) => {
      const deadline = setTimeout(() => controller.abort(), 5_000)
      while (reader && !ended && !pattern.test(text)) {
        const { value, done } = await reader.read()
        if (done) ended = true
        else text += Buffer.from(value).toString()
      }
      clearTimeout(deadline)
      return { text, ended }
    }
    return { response, until, abort: () => controller.abort() }
  }

  it('ends the streams and voids the tickets of a key when it is revoked', async () => {
    const created = (
      await gateway.request('POST', '/api/v1/api-keys', { body: { name: 'to revoke', role: 'viewer' } })
    ).json()
    const headers = { 'x-api-key': created.key as string }
    const socket = open('', headers)
    await socket.opened
    const closed = new Promise<number>((resolve) => socket.socket.once('close', (code) => resolve(code)))
    const events = await sse('', headers)
    await events.until(/: connected/)
    const { ticket } = (await gateway.request('POST', '/api/v1/events/ticket', { key: created.key })).json()
    assert.equal((await gateway.request('DELETE', `/api/v1/api-keys/${created.id}`)).statusCode, 204)
    const late = new Promise<string>((resolve) => setTimeout(() => resolve('still open after 5 s'), 5_000))
    assert.equal(await Promise.race([closed, late]), 4001, 'the WebSocket is closed as revoked')
    socket.socket.terminate()
    const { text, ended } = await events.until(/revoked/)
    assert.match(text, /event: error\ndata: .*revoked/)
    assert.ok(ended || /revoked/.test(text))
    await assert.rejects(open(`?ticket=${ticket}`, {}).opened, /401/)
  })

  it('ends every stream when the gateway shuts down, rather than waiting for the clients to leave', async () => {
    const closing = await startTestGateway()
    let closed = false
    try {
      const url = await closing.app.listen()
      const headers = { 'x-api-key': closing.adminKey }
      const socket = new WebSocket(`${url.replace('http', 'ws')}/api/v1/events/stream`, { headers })
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
      const socketClosed = new Promise<[number, string]>((resolve) =>
        socket.once('close', (code, reason) => resolve([code, String(reason)])),
      )
      const response = await fetch(`${url}/api/v1/events/stream`, { headers })
      const reader = response.body?.getReader()
      await reader?.read()
      const started = Date.now()
      await closing.close()
      closed = true
      assert.ok(Date.now() - started < 5_000, `closed in ${Date.now() - started} ms`)
      assert.deepEqual(await socketClosed, [1001, 'the gateway is shutting down; reconnect and resume'])
      let text = ''
      for (;;) {
        const chunk = await reader?.read()
        if (!chunk || chunk.done) break
        text += Buffer.from(chunk.value).toString()
      }
      assert.match(text, /event: error\ndata: .*shutting down/)
    } finally {
      if (!closed) await closing.close()
    }
  })

  it('keeps a quiet SSE stream open past the connection timeout', async () => {
    const quiet = await startTestGateway({ tuning: { connectionTimeoutMs: 300 } })
    try {
      const url = (await quiet.app.listen()).replace('http', 'ws')
      const response = await fetch(`${url.replace('ws', 'http')}/api/v1/events/stream?types=session.*`, {
        headers: { 'x-api-key': quiet.adminKey },
      })
      const reader = response.body?.getReader()
      await reader?.read()
      // Three connection timeouts with nothing sent; before, the socket was closed after one.
      await new Promise((resolve) => setTimeout(resolve, 900))
      const created = (
        await quiet.request('POST', '/api/v1/sessions', { body: { name: 'late', sandbox: true } })
      ).json()
      let text = ''
      while (reader && !text.includes(created.id)) {
        const { value, done } = await reader.read()
        assert.ok(!done, 'the stream was cut')
        text += Buffer.from(value).toString()
      }
      await reader?.cancel()
    } finally {
      await quiet.close()
    }
  })

  it('answers a cursor it cannot resume from with a 400 before the SSE stream, and resumes from Last-Event-ID', async () => {
    const bad = await fetch(`${base.replace('ws', 'http')}/api/v1/events/stream?after=evt_nope`, {
      headers: { 'x-api-key': gateway.adminKey, accept: 'text/event-stream' },
    })
    assert.equal(bad.status, 400)
    const body = (await bad.json()) as { error: { code: string; details: { path: string }[] } }
    assert.equal(body.error.code, 'invalid_request')
    assert.equal(body.error.details[0]?.path, 'querystring.after')
    const badHeader = await fetch(`${base.replace('ws', 'http')}/api/v1/events/stream`, {
      headers: { 'x-api-key': gateway.adminKey, 'last-event-id': 'garbage' },
    })
    assert.equal(badHeader.status, 400)
    const headerError = (await badHeader.json()) as {
      error: { message: string; details: { path: string }[] }
    }
    assert.deepEqual(
      headerError.error.details.map((detail) => detail.path),
      ['headers.last-event-id'],
    )
    assert.match(headerError.error.message, /^Last-Event-ID: not an event id/)
    const expiredHeader = await fetch(`${base.replace('ws', 'http')}/api/v1/events/stream`, {
      headers: { 'x-api-key': gateway.adminKey, 'last-event-id': 'evt_gone' },
    })
    assert.equal(expiredHeader.status, 400)
    assert.match(
      ((await expiredHeader.json()) as { error: { message: string } }).error.message,
      /^Last-Event-ID: cursor evt_gone expired/,
    )
    const malformed = await fetch(`${base.replace('ws', 'http')}/api/v1/events/stream?after=hello`, {
      headers: { 'x-api-key': gateway.adminKey },
    })
    assert.equal(malformed.status, 400)
    assert.match(
      ((await malformed.json()) as { error: { message: string } }).error.message,
      /querystring\.after: an event id \(evt_…\)/,
    )
    const first = (await create('last-id-1', true)).json()
    const cursor = await latestStatusEvent(first.id)
    const later = (await create('last-id-2', true)).json()
    const resumed = await sse('?types=session.*', { 'x-api-key': gateway.adminKey, 'last-event-id': cursor })
    const { text } = await resumed.until(new RegExp(later.id))
    assert.match(text, new RegExp(later.id), 'replayed from the store after the id the client last saw')
    assert.doesNotMatch(text, new RegExp(`id: ${cursor}\n`))
    resumed.abort()
  })

  it('sends the CORS headers on an SSE stream, for browsers', async () => {
    const cors = await startTestGateway({ environment: { CORS_ORIGINS: 'http://app.example' } })
    try {
      const url = await cors.app.listen()
      const { ticket } = (await cors.request('POST', '/api/v1/events/ticket')).json()
      const controller = new AbortController()
      const response = await fetch(`${url}/api/v1/events/stream?ticket=${ticket}`, {
        headers: { origin: 'http://app.example' },
        signal: controller.signal,
      })
      assert.equal(response.status, 200)
      assert.equal(response.headers.get('access-control-allow-origin'), 'http://app.example')
      controller.abort()
    } finally {
      await cors.close()
    }
  })

  it('opens with a ticket, for browsers, which reopens its stream after a disconnect, the newer replacing the older', async () => {
    const { ticket } = (await gateway.request('POST', '/api/v1/events/ticket')).json()
    const query = `?ticket=${ticket}&types=session.status`
    const first = open(query, {})
    await first.opened
    const firstClosed = new Promise<[number, string]>((resolve) =>
      first.socket.once('close', (code, reason) => resolve([code, String(reason)])),
    )
    // A reconnect before the server noticed the first connection was gone.
    const second = open(query, {})
    await second.opened
    assert.deepEqual(await firstClosed, [4002, 'replaced by a newer stream opened with the same ticket'])
    const created = (await create('ticket-reopened', true)).json()
    await eventually(
      () => second.received.some((e) => e.session?.id === created.id),
      'events on the newer stream',
    )
    const cursor = (
      await eventually(() => {
        const mine = second.received.filter((e) => e.session?.id === created.id)
        return mine.length >= 2 && mine
      }, 'two events on the newer stream')
    ).at(-1)?.id as string
    second.socket.close()
    await eventually(() => second.socket.readyState === WebSocket.CLOSED, 'the second stream closed')
    // An EventSource reconnecting: the URL it first opened, ticket and `after` included, and
    // the last id it saw, which wins over the URL's `after`.
    const early = second.received.find((e) => e.session?.id === created.id)?.id as string
    await gateway.request('POST', `/api/v1/sessions/${created.id}/stop`)
    const resumed = await sse(`${query}&after=${early}`, { 'last-event-id': cursor })
    assert.equal(resumed.response.status, 200)
    const { text } = await resumed.until(/"status":"stopped"/)
    assert.match(text, new RegExp(`"id":"${created.id}"`), 'what happened while it was away is replayed')
    assert.doesNotMatch(text, new RegExp(`id: (${early}|${cursor})\n`), 'from after the last id it saw')
    // A newer stream with this ticket: over SSE the older one is told it was replaced.
    const newer = open(query, {})
    await newer.opened
    const replaced = await resumed.until(/event: replaced/)
    assert.match(replaced.text, /event: replaced\ndata: .*replaced by a newer stream/)
    newer.socket.close()
    // Other filters are another stream, not this ticket's: over SSE a 401 before the stream,
    // which an EventSource does not retry; over WebSocket a close.
    const otherSse = await fetch(`${base.replace('ws', 'http')}/api/v1/events/stream?ticket=${ticket}`)
    assert.equal(otherSse.status, 401)
    assert.match(((await otherSse.json()) as { error: { message: string } }).error.message, /reopens only/)
    const head = await fetch(`${base.replace('ws', 'http')}/api/v1/events/stream${query}`, { method: 'HEAD' })
    assert.equal(head.status, 405, 'no stream for a HEAD')
    assert.equal(head.headers.get('allow'), 'GET')
    const other = open(`?ticket=${ticket}`, {})
    const refused = await new Promise<[number, string]>((resolve) =>
      other.socket.once('close', (code, reason) => resolve([code, String(reason)])),
    )
    assert.equal(refused[0], 1008)
    assert.match(refused[1], /reopens only the stream it opened/)
    await assert.rejects(open('?ticket=tkt_never-issued', {}).opened, /401/)
  })

  it('keeps a spec-following EventSource going with its ticket across a dropped connection, missing nothing', async () => {
    const { ticket } = (await gateway.request('POST', '/api/v1/events/ticket')).json()
    // Between client and gateway, a proxy whose client side can be cut, as a network would:
    // the gateway does not notice, and the reconnect has to replace the stream it still holds.
    const target = new URL(base.replace('ws', 'http'))
    const clientSides = new Set<Socket>()
    const upstreams = new Set<Socket>()
    const proxy = createNetServer((client) => {
      clientSides.add(client)
      const upstream = connect(Number(target.port), target.hostname)
      upstreams.add(upstream)
      client.pipe(upstream).pipe(client)
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
      client.on('close', () => clientSides.delete(client))
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    const { port } = proxy.address() as AddressInfo
    const source = new EventSource(
      `http://127.0.0.1:${port}/api/v1/events/stream?ticket=${ticket}&types=session.status`,
      { node: { reconnectionTime: 200 } },
    )
    const seen: { id: string; session: string; status: string }[] = []
    source.addEventListener('session.status', (event) => {
      const message = event as Event & { data: string; lastEventId: string }
      const envelope = JSON.parse(message.data) as { session: { id: string }; data: { status: string } }
      seen.push({ id: message.lastEventId, session: envelope.session.id, status: envelope.data.status })
    })
    const opens: number[] = []
    source.addEventListener('open', () => opens.push(Date.now()))
    try {
      const created = (await create('event-source', true)).json()
      await eventually(() => seen.some((e) => e.session === created.id), 'a status event before the drop')
      for (const socket of clientSides) socket.destroy()
      // While it is away: what happens now must reach it after it reconnects.
      await gateway.request('POST', `/api/v1/sessions/${created.id}/stop`)
      await eventually(
        () => seen.some((e) => e.session === created.id && e.status === 'stopped'),
        'the stop, after the reconnect',
      )
      assert.equal(opens.length, 2, 'it reconnected once, with the same ticket')
      assert.equal(new Set(seen.map((e) => e.id)).size, seen.length, 'no event twice')
      assert.equal(source.readyState, EventSource.OPEN)
    } finally {
      source.close()
      for (const socket of [...clientSides, ...upstreams]) socket.destroy()
      proxy.close()
    }
  })

  it('refuses a ticket whose key was revoked where this process did not hear of it', async () => {
    const created = (
      await gateway.request('POST', '/api/v1/api-keys', { body: { name: 'elsewhere', role: 'viewer' } })
    ).json()
    const { ticket } = (await gateway.request('POST', '/api/v1/events/ticket', { key: created.key })).json()
    // As another gateway process revoking it would: in the store, without telling this one.
    const file = new DatabaseSync(databaseFile(gateway.dataDir))
    file.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ?').run(Date.now(), created.id)
    file.close()
    await assert.rejects(open(`?ticket=${ticket}`, {}).opened, /401/)
  })

  it('ends the open streams of a key revoked where this process did not hear of it', async () => {
    const created = (
      await gateway.request('POST', '/api/v1/api-keys', {
        body: { name: 'revoked elsewhere', role: 'viewer' },
      })
    ).json()
    const headers = { 'x-api-key': created.key as string }
    const revokedOne = open('', headers)
    const bystander = open('')
    await Promise.all([revokedOne.opened, bystander.opened])
    const closed = new Promise<[number, string]>((resolve) =>
      revokedOne.socket.once('close', (code, reason) => resolve([code, String(reason)])),
    )
    const events = await sse('', headers)
    await events.until(/: connected/)
    // Still open after a few rounds of the key check while the key stands.
    await new Promise((resolve) => setTimeout(resolve, 600))
    assert.equal(revokedOne.socket.readyState, WebSocket.OPEN)
    // As another gateway process revoking it would: in the store, without telling this one.
    const file = new DatabaseSync(databaseFile(gateway.dataDir))
    file.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ?').run(Date.now(), created.id)
    file.close()
    const late = new Promise<string>((resolve) => setTimeout(() => resolve('still open after 5 s'), 5_000))
    assert.deepEqual(await Promise.race([closed, late]), [4001, 'the API key was revoked'])
    const { text } = await events.until(/revoked/)
    assert.match(text, /event: error\ndata: .*the API key was revoked/)
    assert.equal(bystander.socket.readyState, WebSocket.OPEN, "another key's stream stays open")
    bystander.socket.close()
    // Nor does this process go on trusting the key from its cache for the rest of a minute.
    assertError(await gateway.request('GET', '/api/v1/sessions', { key: created.key }), 401, 'unauthorized')
  })

  it('ends the streams of a key when it expires', async () => {
    const created = (
      await gateway.request('POST', '/api/v1/api-keys', {
        body: { name: 'expiring', role: 'viewer', expiresAt: new Date(Date.now() + 1_500).toISOString() },
      })
    ).json()
    const headers = { 'x-api-key': created.key as string }
    const socket = open('', headers)
    await socket.opened
    const closed = new Promise<[number, string]>((resolve) =>
      socket.socket.once('close', (code, reason) => resolve([code, String(reason)])),
    )
    const events = await sse('', headers)
    const late = new Promise<string>((resolve) => setTimeout(() => resolve('still open after 5 s'), 5_000))
    assert.deepEqual(await Promise.race([closed, late]), [4001, 'the API key expired'])
    const { text } = await events.until(/expired/)
    assert.match(text, /event: error\ndata: .*the API key expired/)
  })

  it('refuses a missing or wrong key', async () => {
    await assert.rejects(open('', {}).opened, /401/)
    await assert.rejects(open('', { 'x-api-key': 'wag_wrong' }).opened, /401/)
  })

  it("never shows a key scoped to one session another session's events", async () => {
    const mine = (await create('scoped-mine')).json()
    const key = (
      await gateway.request('POST', '/api/v1/api-keys', {
        body: { name: 'scoped', role: 'viewer', sessionIds: [mine.id] },
      })
    ).json().key as string
    const stream = open('', { 'x-api-key': key })
    await stream.opened
    const other = (await create('scoped-other')).json()
    await gateway.request('POST', `/api/v1/sessions/${other.id}/start`)
    await gateway.request('POST', `/api/v1/sessions/${mine.id}/start`)
    await eventually(() => stream.received.some((e) => e.session?.id === mine.id), 'own events')
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.ok(stream.received.every((e) => e.session?.id === mine.id))
    stream.socket.close()
  })

  it('lists stored events with type families and key scope applied before the limit', async () => {
    const early = (await create('listed-early', true)).json()
    await waitForStatus(gateway, early.id, 'scan_qr')
    await gateway.request('POST', `/api/v1/sessions/${early.id}/stop`)
    const key = (
      await gateway.request('POST', '/api/v1/api-keys', {
        body: { name: 'listed', role: 'viewer', sessionIds: [early.id] },
      })
    ).json().key as string
    // Newer events of another session, and of other types, that a limit of 1 must see past.
    for (const name of ['listed-later-1', 'listed-later-2']) {
      const later = (await create(name, true)).json()
      await waitForStatus(gateway, later.id, 'scan_qr')
    }

    const family = (await gateway.request('GET', '/api/v1/events?types=session.*&limit=1')).json()
    assert.match(family.items[0]?.type ?? '', /^session\./)
    const qr = (await gateway.request('GET', '/api/v1/events?types=session.qr,message.*&limit=1')).json()
    assert.equal(qr.items[0]?.type, 'session.qr')
    const own = (
      await gateway.request(
        'GET',
        `/api/v1/events?types=session.status,message.*&limit=1&session=${early.id}`,
      )
    ).json()
    assert.equal(own.items.length, 1)
    const scoped = (await gateway.request('GET', '/api/v1/events?limit=1', { key })).json()
    assert.equal(scoped.items.length, 1, 'the scoped key sees its own session past the newer ones')
    assert.equal(scoped.items[0]?.session.id, early.id)
  })

  it('takes sessions by name in its filters, and refuses one it cannot find', async () => {
    const session = (await create('named-filter')).json()
    const stream = open('?sessions=named-filter&types=session.status')
    await stream.opened
    await gateway.request('POST', `/api/v1/sessions/${session.id}/start`)
    await eventually(() => stream.received.some((e) => e.session?.id === session.id), 'its events, by name')
    stream.socket.close()
    const listed = (await gateway.request('GET', '/api/v1/events?session=named-filter')).json()
    assert.ok(listed.items.length > 0)
    assert.ok(listed.items.every((event: Envelope) => event.session?.id === session.id))
    assertError(await gateway.request('GET', '/api/v1/events?session=no-such-session'), 404, 'not_found')
    const missing = open('?sessions=no-such-session')
    const closed = new Promise<number>((resolve) => missing.socket.once('close', (code) => resolve(code)))
    assert.equal(await closed, 1008)
  })

  it('pages through events of one millisecond without skipping or repeating one', async () => {
    const session = (await create('paged')).json()
    // One record() call: the seven share a timestamp, as a burst's events do.
    const recorded = await gateway.app.recorder.record(
      { id: session.id, organizationId: gateway.app.bootstrap.organizationId, name: 'paged', metadata: {} },
      Array.from({ length: 7 }, (_, i) => ({
        type: 'contact.update' as const,
        data: {
          jid: `${i}@s.whatsapp.net`,
          lid: null,
          phone: null,
          changed: ['name' as const],
          name: `c${i}`,
          pushName: null,
          verifiedName: null,
        },
      })),
    )
    assert.equal(new Set(recorded.map((event) => event.timestamp)).size, 1, 'one millisecond')
    const seen: string[] = []
    let cursor = ''
    for (let page = 0; page < 10; page++) {
      const query = `session=${session.id}&types=contact.update&limit=3${cursor ? `&cursor=${cursor}` : ''}`
      const body = (await gateway.request('GET', `/api/v1/events?${query}`)).json()
      seen.push(...body.items.map((event: { id: string }) => event.id))
      if (!body.nextCursor) break
      cursor = body.nextCursor
    }
    assert.deepEqual(seen, recorded.map((event) => event.id).reverse(), 'every event once, newest first')
    assertInvalidField(await gateway.request('GET', '/api/v1/events?cursor=nonsense'), 'querystring.cursor')
  })
})
