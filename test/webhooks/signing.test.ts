import assert from 'node:assert/strict'
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { signatureHeaders } from '../../src/webhooks/signing.ts'
import { type Harness, newSession, openHarness, sessionWebhooks } from './harness.ts'
import { Receiver } from './receiver.ts'

/*
 * Verifiers written from each scheme's description, not from our signing code: what a
 * receiver would implement. They see only the raw bytes received and the headers.
 */

const header = (headers: IncomingHttpHeaders, name: string): string => {
  const value = headers[name]
  assert.equal(typeof value, 'string', `missing header ${name}`)
  return value as string
}

const sameBytes = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b)

/** Standard Webhooks: HMAC-SHA256 over `id.timestamp.body`, key = base64 after whsec_, `v1,<base64>`. */
function verifyStandard(
  secret: string,
  headers: IncomingHttpHeaders,
  body: string,
  nowSeconds: number,
): boolean {
  const id = header(headers, 'webhook-id')
  const timestamp = header(headers, 'webhook-timestamp')
  if (Math.abs(nowSeconds - Number(timestamp)) > 300) return false
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest()
  return header(headers, 'webhook-signature')
    .split(' ')
    .some((entry) => {
      const [version, signature] = entry.split(',')
      return (
        version === 'v1' && signature !== undefined && sameBytes(Buffer.from(signature, 'base64'), expected)
      )
    })
}

/** The seed's legacy form: hex HMAC-SHA512 of the body with the key's UTF-8 bytes. */
function verifyHmacSha512(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  if (header(headers, 'x-webhook-hmac-algorithm') !== 'sha512') return false
  const expected = createHmac('sha512', secret).update(body).digest()
  return sameBytes(Buffer.from(header(headers, 'x-webhook-hmac'), 'hex'), expected)
}

/** The other legacy form: `sha256=<hex HMAC-SHA256 of the body>`. */
function verifySha256(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const [scheme, hex] = header(headers, 'x-webhook-signature').split('=')
  if (scheme !== 'sha256' || !hex) return false
  return sameBytes(Buffer.from(hex, 'hex'), createHmac('sha256', secret).update(body).digest())
}

describe('webhook signing', () => {
  let harness: Harness
  let receiver: Receiver

  before(async () => {
    harness = await openHarness()
    receiver = await Receiver.start()
  })
  after(async () => {
    await harness.close()
    await receiver.stop()
  })

  const deliverOne = async () => {
    receiver.requests.length = 0
    const session = newSession()
    const event = await harness.emit('session.status', { session, data: { status: 'ready' } })
    assert.equal(await harness.module.worker.runOnce(), 1)
    const [request] = receiver.requests
    assert.ok(request, 'the receiver got the delivery')
    return { event, request }
  }
  const nowSeconds = () => Math.floor(harness.clock.now() / 1000)

  it('matches the Standard Webhooks specification example', () => {
    const headers = signatureHeaders('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', {
      id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      timestamp: 1614265330,
      body: '{"test": 2432232314}',
    })
    assert.deepEqual(headers, { 'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' })
  })

  it('signs the standard scheme with a generated whsec_ secret that an independent verifier accepts', async () => {
    const { webhook, generatedSecret } = await harness.module.service.create(harness.organizationId, {
      url: receiver.url(),
    })
    assert.match(generatedSecret ?? '', /^whsec_[A-Za-z0-9+/]{43}=$/)
    const { event, request } = await deliverOne()
    await harness.module.service.delete(harness.organizationId, webhook.id)

    assert.equal(request.headers['webhook-id'], event.id, 'the message id is the event id')
    assert.equal(request.headers['content-type'], 'application/json')
    assert.deepEqual(
      JSON.parse(request.body),
      {
        id: event.id,
        type: event.type,
        session: event.session,
        organization: event.organizationId,
        timestamp: new Date(event.timestamp).toISOString(),
        data: event.data,
      },
      'the body is the documented event envelope',
    )
    assert.ok(verifyStandard(generatedSecret as string, request.headers, request.body, nowSeconds()))
    // The signature covers the exact bytes: one changed byte, or another id, fails.
    assert.equal(
      verifyStandard(generatedSecret as string, request.headers, `${request.body} `, nowSeconds()),
      false,
    )
    assert.equal(
      verifyStandard(
        generatedSecret as string,
        { ...request.headers, 'webhook-id': 'evt_other' },
        request.body,
        nowSeconds(),
      ),
      false,
    )
  })

  it('signs the legacy hmac-sha512 scheme with X-Webhook-Hmac over the body', async () => {
    const secret = 'a legacy shared secret'
    const webhook = await harness.createWebhook({
      url: receiver.url(),
      secret,
      signatureScheme: 'hmac-sha512',
    })
    const { request } = await deliverOne()
    await harness.module.service.delete(harness.organizationId, webhook.id)

    assert.ok(verifyHmacSha512(secret, request.headers, request.body))
    assert.equal(verifyHmacSha512('another secret', request.headers, request.body), false)
    assert.equal(request.headers['webhook-signature'], undefined, 'only the chosen scheme signs')
  })

  it('signs the legacy sha256 scheme with X-Webhook-Signature: sha256=<hex>', async () => {
    const secret = 'github-style-secret'
    const webhook = await harness.createWebhook({ url: receiver.url(), secret, signatureScheme: 'sha256' })
    const { request } = await deliverOne()
    await harness.module.service.delete(harness.organizationId, webhook.id)

    assert.ok(verifySha256(secret, request.headers, request.body))
    assert.equal(verifySha256(secret, request.headers, request.body.replace('ready', 'READY')), false)
  })

  it('signs alike on either HTTP client: its own thread (the default) or the event loop (a resolver handed in)', async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const onLoop = await openHarness({ resolve: async () => [{ address: '127.0.0.1', family: 4 }] })
    try {
      await onLoop.createWebhook({ url: receiver.url(), secret })
      receiver.requests.length = 0
      await onLoop.emit('session.status', { session: newSession(), data: { status: 'ready' } })
      assert.equal(await onLoop.module.worker.runOnce(), 1)
      const [request] = receiver.requests
      assert.ok(request)
      assert.ok(verifyStandard(secret, request.headers, request.body, Math.floor(onLoop.clock.now() / 1000)))
    } finally {
      await onLoop.close()
    }
  })

  it('signs a session webhook with its HMAC key as the seed describes (sha512), unsigned without one', async () => {
    const session = newSession()
    const [signed, unsigned] = sessionWebhooks(harness.secretBox, [
      { url: receiver.url('/signed'), hmac: { key: 'session-hmac-key' } },
      { url: receiver.url('/unsigned') },
    ])
    receiver.requests.length = 0
    await harness.emit('session.status', { session, sessionWebhooks: [signed!, unsigned!] })
    assert.equal(await harness.module.worker.runOnce(), 2)

    const byPath = new Map(receiver.requests.map((request) => [request.path, request]))
    const signedRequest = byPath.get('/signed')
    const unsignedRequest = byPath.get('/unsigned')
    assert.ok(signedRequest && unsignedRequest)
    assert.ok(verifyHmacSha512('session-hmac-key', signedRequest.headers, signedRequest.body))
    assert.equal(unsignedRequest.headers['x-webhook-hmac'], undefined)
    assert.equal(unsignedRequest.headers['webhook-signature'], undefined)
    assert.match(
      String(unsignedRequest.headers['webhook-id']),
      /^evt_/,
      'ids still let receivers deduplicate',
    )
  })

  it('signs with a rotated secret from the next delivery on, never with the old one', async () => {
    const first = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const second = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'
    const webhook = await harness.createWebhook({ url: receiver.url(), secret: first })
    const before = await deliverOne()
    await harness.module.service.update(harness.organizationId, webhook.id, { secret: second })
    const after = await deliverOne()
    await harness.module.service.delete(harness.organizationId, webhook.id)

    assert.ok(verifyStandard(first, before.request.headers, before.request.body, nowSeconds()))
    assert.ok(verifyStandard(second, after.request.headers, after.request.body, nowSeconds()))
    assert.equal(verifyStandard(first, after.request.headers, after.request.body, nowSeconds()), false)
  })

  it('re-signs each retry with a new timestamp over the same bytes', async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const webhook = await harness.createWebhook({
      url: receiver.url(),
      secret,
      retries: { policy: 'constant', delaySeconds: 5, attempts: 3 },
    })
    receiver.requests.length = 0
    receiver.respond = () => 500
    await harness.emit('session.status', { session: newSession() })
    await harness.module.worker.runOnce()
    harness.clock.advance(5_000)
    receiver.respond = () => 200
    await harness.module.worker.runOnce()
    await harness.module.service.delete(harness.organizationId, webhook.id)

    const [first, second] = receiver.requests
    assert.ok(first && second)
    assert.equal(first.body, second.body)
    assert.equal(first.headers['webhook-id'], second.headers['webhook-id'])
    assert.equal(Number(second.headers['webhook-timestamp']) - Number(first.headers['webhook-timestamp']), 5)
    assert.ok(verifyStandard(secret, second.headers, second.body, nowSeconds()))
  })
})
