import assert from 'node:assert/strict'
import type { LookupAddress } from 'node:dns'
import { after, before, describe, it } from 'node:test'
import { AppError } from '../../src/domain/errors.ts'
import { UndiciWebhookClient } from '../../src/webhooks/http-client.ts'
import { classifyAddress, SsrfGuard, TargetRefusedError } from '../../src/webhooks/ssrf-guard.ts'
import { type Harness, newSession, openHarness } from './harness.ts'
import { Receiver } from './receiver.ts'

const PUBLIC = '93.184.216.34'

describe('SSRF guard', () => {
  it('classifies every off-limits address class, and public addresses as allowed', () => {
    const cases: [string, string | null][] = [
      ['127.0.0.1', 'loopback'],
      ['127.255.0.9', 'loopback'],
      ['::1', 'loopback'],
      ['10.0.0.1', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.1.1', 'private'],
      ['fc00::1', 'private'],
      ['fd12:3456::1', 'private'],
      ['169.254.1.1', 'link-local'],
      ['fe80::1', 'link-local'],
      ['169.254.169.254', 'metadata'],
      ['fd00:ec2::254', 'metadata'],
      ['100.64.0.1', 'cgnat'],
      ['100.127.255.254', 'cgnat'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['224.0.0.1', 'multicast'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'],
      ['::ffff:10.0.0.1', 'private'],
      // Tunnels that carry an IPv4 address, 6to4 and Teredo, are refused outright.
      ['2002:7f00:1::', 'reserved'],
      ['2002:7f00::1', 'reserved'],
      ['2002:5db8:d822::1', 'reserved'],
      ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
      ['64:ff9b::a9fe:a9fe', 'metadata'],
      ['172.32.0.1', null],
      ['100.128.0.1', null],
      ['8.8.8.8', null],
      [PUBLIC, null],
      ['2606:4700:4700::1111', null],
    ]
    for (const [address, expected] of cases) assert.equal(classifyAddress(address), expected, address)
  })

  describe('at creation', () => {
    let harness: Harness
    const dns = new Map<string, string[]>([
      ['hooks.example.com', [PUBLIC]],
      ['internal.example.com', ['10.1.2.3']],
      ['mixed.example.com', [PUBLIC, '192.168.0.7']],
      ['metadata.example.com', ['169.254.169.254']],
    ])

    before(async () => {
      harness = await openHarness({
        allowPrivateTargets: false,
        // `localhost` goes to the system resolver, as in production; the rest are made up.
        resolve: async (hostname) => {
          const addresses = dns.get(hostname)
          if (hostname === 'localhost') return systemLookup(hostname)
          if (!addresses) throw Object.assign(new Error(`no ${hostname}`), { code: 'ENOTFOUND' })
          return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
        },
      })
    })
    after(() => harness.close())

    const refusal = async (url: string): Promise<string> => {
      const error = await harness.module.service.create(harness.organizationId, { url }).then(
        () => assert.fail(`${url} was accepted`),
        (e: unknown) => e,
      )
      assert.ok(error instanceof AppError, String(error))
      assert.equal(error.code, 'invalid_request')
      assert.equal(error.details?.[0]?.path, 'body.url')
      return error.message
    }

    const refused: [string, RegExp][] = [
      ['http://127.0.0.1:8080/hook', /loopback/],
      ['http://[::1]/hook', /loopback/],
      ['http://2130706433/hook', /127\.0\.0\.1 is a loopback/],
      ['http://10.0.0.1/hook', /private/],
      ['http://172.16.5.4/hook', /private/],
      ['http://192.168.1.1/hook', /private/],
      ['http://[fc00::1]/hook', /private/],
      ['http://169.254.10.10/hook', /link-local/],
      ['http://[fe80::1]/hook', /link-local/],
      ['http://100.64.0.1/hook', /cgnat/],
      ['http://169.254.169.254/latest/meta-data', /metadata/],
      ['http://0.0.0.0/hook', /unspecified/],
      ['http://[::]/hook', /unspecified/],
      ['http://[::ffff:127.0.0.1]/hook', /loopback/],
      ['http://internal.example.com/hook', /internal\.example\.com \(10\.1\.2\.3\) is a private/],
      ['http://metadata.example.com/hook', /metadata/],
      ['http://mixed.example.com/hook', /192\.168\.0\.7/],
      ['http://nowhere.example.com/hook', /does not resolve/],
    ]
    for (const [url, reason] of refused) {
      it(`refuses ${url}`, async () => {
        assert.match(await refusal(url), reason)
      })
    }

    it('refuses localhost, a hostname that resolves to loopback', async () => {
      assert.match(
        await refusal('http://localhost:9/hook'),
        /localhost \((127\.0\.0\.1|::1)\) is a loopback address/,
      )
    })

    it('refuses a change of URL to a private target', async () => {
      const webhook = await harness.createWebhook({ url: 'https://hooks.example.com/in' })
      const error = await harness.module.service
        .update(harness.organizationId, webhook.id, { url: 'http://10.0.0.8/' })
        .catch((e: unknown) => e)
      assert.ok(error instanceof AppError && error.code === 'invalid_request')
    })

    it('accepts public hosts and addresses', async () => {
      await harness.createWebhook({ url: 'https://hooks.example.com/in' })
      await harness.createWebhook({ url: `http://${PUBLIC}/in` })
    })
  })

  describe('at every connection', () => {
    let harness: Harness
    let receiver: Receiver
    let rebound = false

    before(async () => {
      receiver = await Receiver.start()
      harness = await openHarness({
        allowPrivateTargets: false,
        // Public when the webhook is saved, loopback (our receiver) afterwards: DNS rebinding.
        resolve: async () => [{ address: rebound ? '127.0.0.1' : PUBLIC, family: 4 }],
      })
    })
    after(async () => {
      await harness.close()
      await receiver.stop()
    })

    it('checks DNS again before each attempt and refuses a host that now resolves to loopback', async () => {
      const port = new URL(receiver.url()).port
      await harness.createWebhook({ url: `http://rebind.example.com:${port}/hook` })
      rebound = true
      await harness.emit('message.received', { session: newSession() })
      assert.equal(await harness.module.worker.runOnce(), 1)
      const [row] = await harness.rows()
      assert.equal(row?.status, 'pending')
      assert.match(
        row?.last_error ?? '',
        /refused: rebind\.example\.com \(127\.0\.0\.1\) is a loopback address/,
      )
      assert.equal(receiver.requests.length, 0, 'nothing reached the loopback receiver')
    })

    it("refuses in the HTTP client's own socket lookup, after any earlier check", async () => {
      const guard = new SsrfGuard({ allowPrivateTargets: false })
      const client = new UndiciWebhookClient({ lookup: guard.lookup() })
      try {
        const port = new URL(receiver.url()).port
        const error = await client
          .post({
            url: `http://localhost:${port}/hook`,
            headers: {},
            body: '{}',
            timeoutMs: 2_000,
          })
          .then(
            () => assert.fail('the request went through'),
            (e: unknown) => e,
          )
        const refusal = error instanceof TargetRefusedError ? error : (error as { cause?: unknown }).cause
        assert.ok(refusal instanceof TargetRefusedError, String(error))
        assert.equal(receiver.requests.length, 0)
      } finally {
        await client.close()
      }
    })
  })

  it('hands the HTTP client the checked addresses of a public host, one or all', async () => {
    const guard = new SsrfGuard({
      allowPrivateTargets: false,
      resolve: async () => [
        { address: PUBLIC, family: 4 },
        { address: '2606:2800:220:1::1', family: 6 },
      ],
    })
    const lookup = guard.lookup()
    assert.ok(lookup)
    const one = await new Promise((resolve, reject) =>
      lookup('hooks.example.com', { family: 4 }, (error, address, family) =>
        error ? reject(error) : resolve([address, family]),
      ),
    )
    assert.deepEqual(one, [PUBLIC, 4])
    const all = await new Promise((resolve, reject) =>
      lookup('hooks.example.com', { all: true }, (error, addresses) =>
        error ? reject(error) : resolve(addresses),
      ),
    )
    assert.equal((all as LookupAddress[]).length, 2)
  })

  it('asks DNS once per host for many checks at once and for ten seconds after, refusals included', async () => {
    let asked = 0
    let clock = 0
    let address = PUBLIC
    const guard = new SsrfGuard({
      allowPrivateTargets: false,
      now: () => clock,
      resolve: async () => {
        asked++
        await new Promise((resolve) => setTimeout(resolve, 20))
        return [{ address, family: 4 }]
      },
    })
    await Promise.all(Array.from({ length: 50 }, () => guard.check('https://hooks.example.com/a')))
    assert.equal(asked, 1, 'fifty checks at once: one lookup')
    clock += 9_000
    await guard.check('https://hooks.example.com/b')
    assert.equal(asked, 1, 'still remembered')
    clock += 2_000
    address = '10.0.0.9'
    await assert.rejects(guard.check('https://hooks.example.com/c'), /10\.0\.0\.9\) is a private/)
    await assert.rejects(guard.check('https://hooks.example.com/d'), /is a private/)
    assert.equal(asked, 2, 'asked again after ten seconds; the refusal remembered too')
    address = PUBLIC
    await guard.check('https://hooks.example.com/e', { fresh: true })
    assert.equal(asked, 3, 'a URL being saved asks again')
    await guard.check('https://other.example.com/')
    assert.equal(asked, 4, 'another host is another lookup')
  })

  it('refuses localhost through the system resolver', async () => {
    const guard = new SsrfGuard({ allowPrivateTargets: false })
    await assert.rejects(guard.check('http://localhost:3000/hook'), /localhost \(.+\) is a loopback address/)
  })

  it('allows private targets when the operator says so', async () => {
    const guard = new SsrfGuard({ allowPrivateTargets: true })
    await guard.check('http://localhost:3000/hook')
    await guard.check('http://10.0.0.1/hook')
    assert.equal(guard.lookup(), undefined)
    await assert.rejects(guard.check('ftp://example.com/'), TargetRefusedError)
  })
})

async function systemLookup(hostname: string): Promise<LookupAddress[]> {
  const { lookup } = await import('node:dns/promises')
  return lookup(hostname, { all: true })
}
