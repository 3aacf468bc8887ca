import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertInvalidField } from '../support/http-assertions.ts'
import { queryFile } from '../support/sqlite-file.ts'

/** A public address, so the guard needs no DNS to accept it. */
const PUBLIC_HOOK = 'https://93.184.216.34/wa'

describe('session webhooks are validated when saved', () => {
  /** refuses private targets, as a production gateway does */
  let strict: TestGateway

  before(async () => {
    strict = await startTestGateway({ environment: { WEBHOOK_ALLOW_PRIVATE: '0' } })
  })
  after(async () => {
    await strict.close()
  })

  const create = (name: string, webhooks: unknown[]) =>
    strict.request('POST', '/api/v1/sessions', { body: { name, start: false, config: { webhooks } } })
  const patch = (id: string, webhooks: unknown[]) =>
    strict.request('PATCH', `/api/v1/sessions/${id}`, { body: { config: { webhooks } } })
  async function created(name: string, webhooks: unknown[] = []): Promise<string> {
    const response = await create(name, webhooks)
    assert.equal(response.statusCode, 201, response.body)
    return response.json().id
  }

  describe('happy', () => {
    it('saves a webhook to a public address, its HMAC key sealed and never returned', async () => {
      const key = 'session-hmac-key-789'
      const config = [
        {
          url: PUBLIC_HOOK,
          events: ['message.*', 'session.status'],
          hmac: { key },
          customHeaders: [{ name: 'X-Tenant', value: 'acme' }],
        },
      ]
      const response = await create('public-hook', config)
      assert.equal(response.statusCode, 201, response.body)
      const id = response.json().id as string
      const read = await strict.request('GET', `/api/v1/sessions/${id}`)
      for (const body of [response, read]) {
        assert.ok(!body.body.includes(key), 'the HMAC key never comes back')
        const [webhook] = body.json().config.webhooks
        assert.equal(webhook.url, PUBLIC_HOOK)
        assert.deepEqual(webhook.hmac, { keySet: true })
        assert.deepEqual(webhook.customHeaders, [{ name: 'X-Tenant', value: 'acme' }])
      }
      const [row] = queryFile<{ config: string }>(
        strict.dataDir,
        'SELECT config FROM sessions WHERE id = ?',
        id,
      )
      assert.ok(row && !row.config.includes(key), 'the key is stored encrypted')

      // A viewer key sees the header's name, not its value (often the receiver's token).
      const viewer = (
        await strict.request('POST', '/api/v1/api-keys', { body: { name: 'viewer', role: 'viewer' } })
      ).json().key as string
      for (const url of [`/api/v1/sessions/${id}`, '/api/v1/sessions']) {
        const seen = await strict.request('GET', url, { key: viewer })
        assert.equal(seen.statusCode, 200, seen.body)
        assert.ok(!seen.body.includes('acme'), `${url}: the value stays hidden from a viewer`)
        assert.ok(seen.body.includes('X-Tenant'), `${url}: the name shows`)
      }
    })
  })

  describe('errors', () => {
    const cases: [string, unknown, string][] = [
      [
        'a custom header that would override a signature header',
        { url: PUBLIC_HOOK, customHeaders: [{ name: 'Webhook-Signature', value: 'forged' }] },
        'body.config.webhooks.0.customHeaders.0.name',
      ],
      [
        'a custom header that would override the content type',
        {
          url: PUBLIC_HOOK,
          customHeaders: [
            { name: 'X-Fine', value: 'yes' },
            { name: 'content-type', value: 'text/plain' },
          ],
        },
        'body.config.webhooks.0.customHeaders.1.name',
      ],
      [
        'a custom header value with a line break in it',
        { url: PUBLIC_HOOK, customHeaders: [{ name: 'X-Token', value: 'a\r\nX-Injected: 1' }] },
        'body.config.webhooks.0.customHeaders.0.value',
      ],
      [
        'a custom header given twice',
        {
          url: PUBLIC_HOOK,
          customHeaders: [
            { name: 'X-Token', value: 'a' },
            { name: 'x-token', value: 'b' },
          ],
        },
        'body.config.webhooks.0.customHeaders.1.name',
      ],
      [
        'an event pattern that is not a type, a family or *',
        { url: PUBLIC_HOOK, events: ['message.**'] },
        'body.config.webhooks.0.events.0',
      ],
      ['an empty event list', { url: PUBLIC_HOOK, events: [] }, 'body.config.webhooks.0.events'],
      ['a URL that is not http(s)', { url: 'ftp://93.184.216.34/' }, 'body.config.webhooks.0.url'],
    ]
    for (const [what, webhook, path] of cases) {
      it(`refuses ${what} on create and on update, naming ${path}`, async () => {
        assertInvalidField(await create(`bad-${path.length}-${what.length}`, [webhook]), path)
        const id = await created(`ok-${path.length}-${what.length}`)
        assertInvalidField(await patch(id, [webhook]), path)
      })
    }

    it('names the webhook at its index, and every problem at once', async () => {
      const response = await create('second-bad', [
        { url: PUBLIC_HOOK },
        {
          url: 'http://127.0.0.1:8080/hook',
          customHeaders: [{ name: 'User-Agent', value: 'mine' }],
        },
      ])
      const error = assertInvalidField(response, 'body.config.webhooks.1.url')
      assert.deepEqual(
        error.details?.map((detail) => detail.path),
        ['body.config.webhooks.1.url', 'body.config.webhooks.1.customHeaders.0.name'],
      )
    })
  })

  describe('security', () => {
    const refused: [string, string, RegExp][] = [
      ['loopback', 'http://127.0.0.1:9000/hook', /loopback/],
      [
        'a hostname that resolves to loopback',
        'http://localhost:9000/hook',
        /localhost \(.+\) is a loopback address/,
      ],
      ['the cloud metadata address', 'http://169.254.169.254/latest/meta-data/', /metadata/],
      ['a private network', 'http://10.1.2.3/hook', /private/],
      ['IPv6 loopback', 'http://[::1]:9000/hook', /loopback/],
    ]
    for (const [what, url, reason] of refused) {
      it(`refuses a webhook to ${what}, on create and on update`, async () => {
        const name = `ssrf-${what.replace(/\W+/g, '-')}`.slice(0, 50)
        const onCreate = assertInvalidField(await create(name, [{ url }]), 'body.config.webhooks.0.url')
        assert.match(onCreate.message, reason)
        const listed = (await strict.request('GET', '/api/v1/sessions')).json().items as { name: string }[]
        assert.ok(!listed.some((session) => session.name === name), 'nothing was created')

        const id = await created(`${name}-ok`.slice(0, 50), [{ url: PUBLIC_HOOK }])
        const onUpdate = assertInvalidField(await patch(id, [{ url }]), 'body.config.webhooks.0.url')
        assert.match(onUpdate.message, reason)
        const kept = (await strict.request('GET', `/api/v1/sessions/${id}`)).json().config.webhooks
        assert.deepEqual(
          kept.map((webhook: { url: string }) => webhook.url),
          [PUBLIC_HOOK],
          'the refused update changed nothing',
        )
      })
    }

    it('lets the operator allow private targets (WEBHOOK_ALLOW_PRIVATE=1)', async () => {
      const lenient = await startTestGateway({ environment: { WEBHOOK_ALLOW_PRIVATE: '1' } })
      try {
        const response = await lenient.request('POST', '/api/v1/sessions', {
          body: {
            name: 'home-lab',
            start: false,
            config: { webhooks: [{ url: 'http://localhost:9000/hook' }] },
          },
        })
        assert.equal(response.statusCode, 201, response.body)
      } finally {
        await lenient.close()
      }
    })
  })
})
