import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
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
    gateway = await startTestGateway()
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
    const cursor = await eventually(async () => {
      const list = (
        await gateway.request('GET', `/api/v1/events?session=${first.id}&types=session.status`)
      ).json()
      return list.items[0]?.id as string | undefined
    }, 'an event to resume after')
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

  it('opens with a single-use ticket, for browsers', async () => {
    const { ticket } = (await gateway.request('POST', '/api/v1/events/ticket')).json()
    const stream = open(`?ticket=${ticket}`, {})
    await stream.opened
    stream.socket.close()
    await assert.rejects(open(`?ticket=${ticket}`, {}).opened, /401/)
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
})
