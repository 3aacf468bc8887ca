import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { AppError } from '../../src/domain/errors.ts'
import { MediaFetcher } from '../../src/messages/media-fetcher.ts'
import { SsrfGuard } from '../../src/webhooks/ssrf-guard.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertInvalidField } from '../support/http-assertions.ts'

/** A 1×1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
)
const PUBLIC = '93.184.216.34'

/** A media server on loopback: `/cat.png`, redirects to wherever `?to=` says, and a log of paths asked for. */
async function startMediaServer(): Promise<{ server: Server; base: string; paths: string[] }> {
  const paths: string[] = []
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost')
    paths.push(url.pathname)
    const to = url.searchParams.get('to')
    if (to) return response.writeHead(302, { location: to }).end()
    if (url.pathname === '/cat.png') return response.writeHead(200, { 'content-type': 'image/png' }).end(PNG)
    if (url.pathname === '/streamed') {
      // Chunked, with no Content-Length to refuse it by: only counting tells the size.
      response.writeHead(200, { 'content-type': 'image/png' })
      for (let i = 0; i < 4; i++) response.write(Buffer.alloc(1024))
      return response.end()
    }
    response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { server, base: `http://127.0.0.1:${port}`, paths }
}

describe('media URLs given to the send API', () => {
  let media: Awaited<ReturnType<typeof startMediaServer>>
  let port: string

  before(async () => {
    media = await startMediaServer()
    port = new URL(media.base).port
  })
  after(async () => {
    await new Promise((resolve) => media.server.close(resolve))
  })

  /** A queued image message: the session need not be linked for its media to be fetched. */
  const sendImage = (gateway: TestGateway, url: string) =>
    gateway.request('POST', '/api/v1/sessions/media/messages', {
      body: { to: '15550400101', type: 'image', image: { url }, queue: true },
    })
  async function gatewayWith(environment: Record<string, string>): Promise<TestGateway> {
    const gateway = await startTestGateway({ environment })
    const created = await gateway.request('POST', '/api/v1/sessions', {
      body: { name: 'media', sandbox: true, start: false },
    })
    assert.equal(created.statusCode, 201, created.body)
    return gateway
  }

  describe('security: refused by default (MEDIA_ALLOW_PRIVATE unset)', () => {
    let gateway: TestGateway
    before(async () => {
      // Webhooks may go to private targets here: the media switch is a separate one.
      gateway = await gatewayWith({ WEBHOOK_ALLOW_PRIVATE: '1', MEDIA_ALLOW_PRIVATE: '0' })
    })
    after(async () => {
      await gateway.close()
    })

    const cases: [string, () => string, RegExp][] = [
      ['a loopback address', () => `http://127.0.0.1:${port}/cat.png`, /127\.0\.0\.1 is a loopback address/],
      [
        'a hostname that resolves to loopback',
        () => `http://localhost:${port}/cat.png`,
        /localhost \(.+\) is a loopback address/,
      ],
      ['the cloud metadata address', () => 'http://169.254.169.254/latest/meta-data/', /metadata address/],
      ['IPv6 loopback', () => `http://[::1]:${port}/cat.png`, /loopback address/],
      ['a private network', () => 'http://10.0.0.5/cat.png', /private address/],
    ]
    for (const [what, url, reason] of cases) {
      it(`refuses to fetch from ${what}, naming body.image.url`, async () => {
        const asked = media.paths.length
        const error = assertInvalidField(await sendImage(gateway, url()), 'body.image.url')
        assert.match(error.message, /^body\.image\.url: refused: /)
        assert.match(error.message, reason)
        assert.equal(media.paths.length, asked, 'no request was made')
      })
    }
  })

  describe('happy: allowed by the operator (MEDIA_ALLOW_PRIVATE=1)', () => {
    let gateway: TestGateway
    before(async () => {
      gateway = await gatewayWith({ MEDIA_ALLOW_PRIVATE: '1' })
    })
    after(async () => {
      await gateway.close()
    })

    it('fetches the media, following a redirect', async () => {
      const response = await sendImage(gateway, `${media.base}/start?to=/cat.png`)
      assert.equal(response.statusCode, 202, response.body)
      assert.deepEqual(media.paths.slice(-2), ['/start', '/cat.png'])
      const stored = await gateway.request('GET', `/api/v1/sessions/media/messages/${response.json().id}`)
      assert.equal(stored.json().media.mimetype, 'image/png')
      assert.equal(stored.json().media.size, PNG.length)
    })
  })

  describe('the fetcher checks every hop and every connection', () => {
    const refusedWith = (pattern: RegExp) => (error: unknown) => {
      assert.ok(error instanceof AppError, String(error))
      assert.equal(error.code, 'invalid_request')
      assert.equal(error.details?.[0]?.path, 'body.image.url')
      assert.match(error.message, pattern)
      return true
    }
    /** The strict guard, except that it lets the first URL through (as if it were public). */
    const strictBut = (allowed: string) => {
      const strict = new SsrfGuard({ allowPrivateTargets: false })
      return {
        check: (url: string) => (url === allowed ? Promise.resolve() : strict.check(url)),
        lookup: () => undefined,
      }
    }

    it('re-checks a redirect before following it', async () => {
      const start = `${media.base}/start?to=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`
      const fetcher = new MediaFetcher({ guard: strictBut(start) })
      try {
        await assert.rejects(
          fetcher.fetch({ url: start }, 1_000_000, 'body.image'),
          refusedWith(/refused: redirected to http:\/\/169\.254\.169\.254, and .* is a metadata address/),
        )
      } finally {
        await fetcher.close()
      }
    })

    it('refuses a redirect to another scheme', async () => {
      const start = `${media.base}/start?to=${encodeURIComponent('file:///etc/passwd')}`
      const fetcher = new MediaFetcher({ guard: strictBut(start) })
      try {
        await assert.rejects(
          fetcher.fetch({ url: start }, 1_000_000, 'body.image'),
          refusedWith(/only http and https media URLs are fetched, not file:/),
        )
      } finally {
        await fetcher.close()
      }
    })

    it('stops after five redirects', async () => {
      let url = `${media.base}/cat.png`
      for (let i = 0; i < 6; i++) url = `${media.base}/hop${i}?to=${encodeURIComponent(url)}`
      const fetcher = new MediaFetcher()
      try {
        await assert.rejects(
          fetcher.fetch({ url }, 1_000_000, 'body.image'),
          refusedWith(/more than 5 redirects/),
        )
      } finally {
        await fetcher.close()
      }
    })

    it('refuses a file over the limit, whether its size is declared or only streamed', async () => {
      const fetcher = new MediaFetcher()
      const tooLarge = (error: unknown) => {
        assert.ok(error instanceof AppError, String(error))
        assert.equal(error.details?.[0]?.path, 'body.image')
        assert.match(error.message, /the limit is 64/)
        return true
      }
      try {
        await assert.rejects(fetcher.fetch({ url: `${media.base}/cat.png` }, 64, 'body.image'), tooLarge)
        await assert.rejects(fetcher.fetch({ url: `${media.base}/streamed` }, 64, 'body.image'), tooLarge)
        const fitting = await fetcher.fetch({ url: `${media.base}/streamed` }, 4096, 'body.image')
        assert.equal(fitting.bytes.length, 4096)
        assert.equal(fitting.mimetype, 'image/png')
      } finally {
        await fetcher.close()
      }
    })

    it('refuses a DNS answer that changes to loopback between the check and the connection', async () => {
      let answers = 0
      const guard = new SsrfGuard({
        allowPrivateTargets: false,
        // The check sees a public address; the connection's own lookup gets loopback.
        resolve: async () => [{ address: answers++ === 0 ? PUBLIC : '127.0.0.1', family: 4 }],
      })
      const fetcher = new MediaFetcher({ guard })
      const asked = media.paths.length
      try {
        await assert.rejects(
          fetcher.fetch({ url: `http://rebinding.test:${port}/cat.png` }, 1_000_000, 'body.image'),
          refusedWith(/refused: rebinding\.test \(127\.0\.0\.1\) is a loopback address/),
        )
        assert.ok(answers >= 2, 'the connection resolved the name again')
        assert.equal(media.paths.length, asked, 'no request reached the server')
      } finally {
        await fetcher.close()
      }
    })
  })
})
