import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { SimUser } from '../../src/sandbox/network.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { createLinkedSession } from '../support/sessions.ts'
import { queryFile } from '../support/sqlite-file.ts'
import { eventually } from '../support/wait.ts'

const ACCOUNT = '15550400001'
const S = '/api/v1/sessions/shop'

interface MessageBody {
  id: string
  waId: string
  chatId: string
  type: string
  text: string | null
  status: string | null
  sender: { jid: string | null; lid: string | null; pushName: string | null }
  media: { type: string; mimetype: string; mediaId?: string; size?: number } | null
  details: Record<string, unknown> | null
  targetId: string | null
  quotedId: string | null
  sendAfter: string | null
}

describe('messaging through the API, against the sandbox', () => {
  let gateway: TestGateway
  let alice: SimUser

  before(async () => {
    gateway = await startTestGateway()
    alice = gateway.sandbox.network.createUser({
      kind: 'contact',
      phoneNumber: '15550400101',
      pushName: 'Alice',
    })
    await createLinkedSession(gateway, 'shop', ACCOUNT)
    // no pacing in these tests, except where a test sets it
    const patched = await gateway.request('PATCH', S, { body: { config: { pacing: { enabled: false } } } })
    assert.equal(patched.statusCode, 200, patched.body)
  })
  after(async () => {
    await gateway.close()
  })

  const send = (body: unknown, headers?: Record<string, string>) =>
    gateway.request('POST', `${S}/messages`, { body, ...(headers ? { headers } : {}) })
  const message = async (id: string) =>
    (await gateway.request('GET', `${S}/messages/${id}`)).json() as MessageBody
  const aliceGot = (waId: string) =>
    eventually(() => alice.received.find((m) => m.id === waId), `Alice to decrypt ${waId}`)

  describe('happy', () => {
    it('stores a contact text, with sender phone, LID and push name, in its chat', async () => {
      const { id } = await gateway.sandbox.sendAs({
        from: alice.phoneNumber,
        to: ACCOUNT,
        content: { text: 'hi shop' },
      })
      const stored = await eventually(async () => {
        const page = (await gateway.request('GET', `${S}/chats/${alice.phoneNumber}/messages`)).json()
        return page.items?.find((m: MessageBody) => m.waId === id) as MessageBody | undefined
      }, 'the message in the chat timeline')
      assert.equal(stored.text, 'hi shop')
      assert.equal(stored.type, 'text')
      assert.equal(stored.chatId, alice.jid)
      assert.deepEqual(stored.sender, { jid: alice.jid, lid: alice.lidJid, pushName: 'Alice' })
      const chats = (await gateway.request('GET', `${S}/chats`)).json()
      assert.ok(chats.items.some((c: { id: string }) => c.id === alice.jid))
    })

    it('sends a text: 202 pending, then sent, delivered and read, decrypted by the contact', async () => {
      const response = await send({
        to: `+${alice.phoneNumber}`,
        type: 'text',
        text: { body: 'hello Alice' },
      })
      assert.equal(response.statusCode, 202, response.body)
      const accepted = response.json()
      assert.equal(accepted.status, 'pending')
      assert.match(accepted.id, /^msg_/)
      const got = await aliceGot(accepted.waId)
      assert.equal(got.text, 'hello Alice')
      await eventually(async () => (await message(accepted.id)).status === 'delivered', 'delivered')
      await gateway.request('POST', '/api/v1/sandbox/receipts', {
        body: { from: alice.phoneNumber, to: ACCOUNT, messageIds: [accepted.waId], type: 'read' },
      })
      await eventually(async () => (await message(accepted.id)).status === 'read', 'read')
    })

    it('sends every kind, each decrypted by the contact', async () => {
      const first = (await send({ to: alice.jid, type: 'text', text: { body: 'quote me' } })).json()
      await aliceGot(first.waId)
      const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001', 'hex')
      const cases: [unknown, string][] = [
        [
          { to: alice.jid, type: 'text', text: { body: 'a reply' }, replyTo: first.id },
          'extendedTextMessage',
        ],
        [
          {
            to: alice.jid,
            type: 'image',
            image: { base64: png.toString('base64'), mimetype: 'image/png', caption: 'pic' },
          },
          'imageMessage',
        ],
        [
          {
            to: alice.jid,
            type: 'document',
            document: {
              base64: Buffer.from('%PDF-1.4').toString('base64'),
              mimetype: 'application/pdf',
              fileName: 'a.pdf',
            },
          },
          'documentMessage',
        ],
        [
          {
            to: alice.jid,
            type: 'audio',
            audio: { base64: Buffer.from('OggS').toString('base64'), mimetype: 'audio/ogg', voice: true },
          },
          'audioMessage',
        ],
        [
          { to: alice.jid, type: 'location', location: { latitude: 52.5, longitude: 13.4, name: 'Berlin' } },
          'locationMessage',
        ],
        [
          {
            to: alice.jid,
            type: 'contact',
            contact: {
              contacts: [{ displayName: 'Bob', vcard: 'BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nEND:VCARD' }],
            },
          },
          'contactMessage',
        ],
        [
          { to: alice.jid, type: 'poll', poll: { name: 'Lunch?', options: ['yes', 'no'] } },
          'pollCreationMessageV3',
        ],
        [
          { to: alice.jid, type: 'reaction', reaction: { messageId: first.id, emoji: '👍' } },
          'reactionMessage',
        ],
      ]
      for (const [body, kind] of cases) {
        const response = await send(body)
        assert.equal(response.statusCode, 202, response.body)
        const got = await aliceGot(response.json().waId)
        assert.ok(got.message[kind as keyof typeof got.message], `Alice decrypted a ${kind}`)
      }
      const reply = alice.received.find((m) => m.kind === 'extendedTextMessage' && m.text === 'a reply')
      assert.equal(reply?.message.extendedTextMessage?.contextInfo?.stanzaId, first.waId)
    })

    it('takes a multipart upload and delivers it', async () => {
      const form = new FormData()
      form.append(
        'message',
        JSON.stringify({ to: alice.phoneNumber, type: 'document', document: { caption: 'uploaded' } }),
      )
      form.append('file', new Blob([Buffer.from('uploaded bytes')], { type: 'text/plain' }), 'notes.txt')
      const request = new Request('http://localhost/', { method: 'POST', body: form })
      const response = await gateway.app.http.inject({
        method: 'POST',
        url: `${S}/messages`,
        headers: { 'x-api-key': gateway.adminKey, 'content-type': request.headers.get('content-type') ?? '' },
        payload: Buffer.from(await request.arrayBuffer()),
      })
      assert.equal(response.statusCode, 202, response.body)
      const got = await aliceGot(response.json().waId)
      assert.equal(got.message.documentMessage?.fileName, 'notes.txt')
      assert.equal(got.message.documentMessage?.mimetype, 'text/plain')
    })

    it('downloads inbound media and serves it byte for byte', async () => {
      const bytes = Buffer.from('a picture from Alice')
      const { id } = await gateway.sandbox.sendAs({
        from: alice.phoneNumber,
        to: ACCOUNT,
        content: {
          media: { kind: 'image', data: bytes.toString('base64'), mimetype: 'image/jpeg', caption: 'look' },
        },
      })
      const stored = await eventually(async () => {
        const found = (await message(id)) as MessageBody & { error?: unknown }
        return found.media?.mediaId ? found : undefined
      }, 'the media to be downloaded')
      assert.equal(stored.text, 'look')
      const media = await gateway.request('GET', `${S}/media/${stored.media?.mediaId}`)
      assert.equal(media.statusCode, 200)
      assert.equal(media.headers['content-type'], 'image/jpeg')
      assert.deepEqual(media.rawPayload, bytes)
    })

    it('returns the first result for a repeated Idempotency-Key and sends once', async () => {
      const body = { to: alice.jid, type: 'text', text: { body: 'exactly once' } }
      const first = await send(body, { 'idempotency-key': 'order-42' })
      const second = await send(body, { 'idempotency-key': 'order-42' })
      assert.equal(first.statusCode, 202)
      assert.deepEqual(second.json(), first.json())
      await aliceGot(first.json().waId)
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.equal(alice.received.filter((m) => m.text === 'exactly once').length, 1)
      const reused = await send(
        { ...body, text: { body: 'something else' } },
        { 'idempotency-key': 'order-42' },
      )
      assert.equal(reused.statusCode, 409)
    })

    it('paces a burst of 50 sends by the configured rate, on the recorded send times', async () => {
      await gateway.request('PATCH', S, {
        body: { config: { pacing: { enabled: true, messagesPerMinute: 600, burst: 5, jitterMs: 0 } } },
      })
      try {
        const times: number[] = []
        const answeredAt: number[] = []
        for (let i = 0; i < 50; i++) {
          const response = await send({
            to: alice.jid,
            type: 'text',
            text: { body: `burst ${i}` },
            queue: true,
          })
          answeredAt.push(Date.now())
          times.push(Date.parse(response.json().sendAfter))
        }
        const first = times[0] ?? 0
        // The token bucket's promise: never more than burst + elapsed / interval sent by any moment.
        for (const [k, t] of times.entries()) {
          assert.ok(k + 1 <= 5 + (t - first) / 100 + 0.01, `send ${k} at +${t - first} ms is early`)
        }
        // The burst is not held back: each of the first 5 may go as soon as it is accepted.
        for (let k = 0; k < 5; k++) {
          assert.ok((times[k] ?? 0) <= (answeredAt[k] ?? 0), `send ${k} of the burst was delayed`)
        }
        // And no slower than the rate: a paced send goes one interval after the one before
        // it, or at once if the bucket refilled while the client was slow to submit.
        for (let k = 5; k < 50; k++) {
          const latest = Math.max(answeredAt[k] ?? 0, (times[k - 1] ?? 0) + 101)
          assert.ok((times[k] ?? 0) <= latest, `send ${k} at +${(times[k] ?? 0) - first} ms is late`)
        }
        assert.ok((times.at(-1) ?? 0) - first >= 45 * 100 - 1, 'spread over the 45 paced slots')
      } finally {
        await gateway.request('PATCH', S, { body: { config: { pacing: { enabled: false } } } })
      }
    })
  })

  describe('the queue, across a stop and a dropped connection', () => {
    /** Stops the session, queues `count` texts `${prefix} i`, and starts it again; their ids. */
    const queueWhileStopped = async (prefix: string, count: number) => {
      await gateway.request('POST', `${S}/stop`)
      await eventually(
        async () => (await gateway.request('GET', S)).json().status === 'stopped',
        'the session stopped',
      )
      const ids: string[] = []
      for (let i = 0; i < count; i++) {
        const response = await send({
          to: alice.jid,
          type: 'text',
          text: { body: `${prefix} ${i}` },
          queue: true,
        })
        assert.equal(response.statusCode, 202, response.body)
        ids.push(response.json().id)
      }
      return ids
    }
    const aliceGotAll = (prefix: string, count: number) =>
      eventually(
        () =>
          new Set(alice.received.filter((m) => m.text?.startsWith(`${prefix} `)).map((m) => m.text)).size ===
          count,
        `Alice to get every ${prefix}`,
        30_000,
      )

    it('sends a queued backlog between other work, not holding the event loop until it is out', async () => {
      await queueWhileStopped('backlog', 400)
      let last = performance.now()
      let longestGap = 0
      const ticks = setInterval(() => {
        const now = performance.now()
        longestGap = Math.max(longestGap, now - last)
        last = now
      }, 5)
      try {
        await gateway.request('POST', `${S}/start`)
        await aliceGotAll('backlog', 400)
      } finally {
        clearInterval(ticks)
      }
      // Sent in one go, 400 texts held it for about a second (4,000: ten).
      assert.ok(longestGap < 400, `the event loop was held for ${longestGap.toFixed(0)} ms`)
    })

    it('keeps a queued send its connection cut off, and sends it after the reconnect', async () => {
      const ids = await queueWhileStopped('cut off', 40)
      let sent = 0
      const unsubscribe = gateway.app.bus.subscribe((event) => {
        // The connection drops under the queue, a few sends in.
        if (event.type === 'message.sent' && ++sent === 5) {
          gateway.sandbox.injectFault({ kind: 'drop', phoneNumber: ACCOUNT })
        }
      })
      const received = () =>
        new Set(alice.received.filter((m) => m.text?.startsWith('cut off ')).map((m) => m.text))
      try {
        await gateway.request('POST', `${S}/start`)
        await eventually(
          async () => {
            const statuses = await Promise.all(ids.map(async (id) => (await message(id)).status))
            return received().size === 40 && !statuses.includes('pending')
          },
          'the queue sent after the reconnect',
          30_000,
        )
      } finally {
        unsubscribe()
      }
      assert.ok(sent >= 5, 'the connection was dropped mid-queue')
      const all = await Promise.all(ids.map((id) => message(id)))
      assert.deepEqual(
        all.filter((one) => one.status === 'failed').map((one) => one.text),
        [],
        'none failed: the sends the drop cut off went after the reconnect',
      )
      // Every one arrived, the one written just before the drop (which never reached the
      // server: it was not acknowledged) sent again after the reconnect; once each.
      const texts = alice.received.filter((m) => m.text?.startsWith('cut off ')).map((m) => m.text)
      assert.equal(received().size, 40)
      assert.ok(texts.length <= 41, `${texts.length} arrived`)
    })

    it('keeps what it sent until the server acknowledges it, and no longer', async () => {
      const ids = await queueWhileStopped('acknowledged', 3)
      await gateway.request('POST', `${S}/start`)
      await aliceGotAll('acknowledged', 3)
      const kept = (id: string) =>
        queryFile<{ send_request: string | null }>(
          gateway.dataDir,
          'SELECT send_request FROM messages WHERE id = ?',
          id,
        )[0]?.send_request
      await eventually(() => ids.every((id) => kept(id) === null), 'the acknowledgements stored')
    })
  })

  describe('errors', () => {
    const cases: [string, unknown, string][] = [
      ['a malformed recipient', { to: 'not-a-number', type: 'text', text: { body: 'x' } }, 'body.to'],
      ['an empty text', { to: '15550400101', type: 'text', text: { body: '' } }, 'body.text.body'],
      [
        'an unsupported image type',
        { to: '15550400101', type: 'image', image: { base64: 'AAAA', mimetype: 'image/bmp' } },
        'body.image.mimetype',
      ],
      [
        'an unreachable media URL',
        { to: '15550400101', type: 'image', image: { url: 'http://127.0.0.1:9/x.png' } },
        'body.image.url',
      ],
      [
        'a sticker over its size limit',
        {
          to: '15550400101',
          type: 'sticker',
          sticker: { base64: Buffer.alloc(1024 * 1024 + 1).toString('base64'), mimetype: 'image/webp' },
        },
        'body.sticker',
      ],
      [
        'a reply to an unknown message',
        { to: '15550400101', type: 'text', text: { body: 'x' }, replyTo: 'msg_nope' },
        'body.replyTo',
      ],
    ]
    for (const [what, body, path] of cases) {
      it(`refuses ${what} with 400 naming ${path}`, async () => {
        const response = await send(body)
        assert.equal(response.statusCode, 400, response.body)
        const error = response.json().error
        assert.ok(
          error.details?.some((d: { path: string }) => d.path === path),
          JSON.stringify(error),
        )
      })
    }

    it('refuses to send from a session that is not ready, unless asked to queue', async () => {
      await gateway.request('POST', '/api/v1/sessions', {
        body: { name: 'idle-one', sandbox: true, start: false },
      })
      const refused = await gateway.request('POST', '/api/v1/sessions/idle-one/messages', {
        body: { to: alice.jid, type: 'text', text: { body: 'x' } },
      })
      assert.equal(refused.statusCode, 409)
      assert.match(refused.json().error.message, /not ready/)
      const queued = await gateway.request('POST', '/api/v1/sessions/idle-one/messages', {
        body: { to: alice.jid, type: 'text', text: { body: 'x' }, queue: true },
      })
      assert.equal(queued.statusCode, 202)
    })
  })
})
