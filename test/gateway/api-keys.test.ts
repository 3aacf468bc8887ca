import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertError, assertInvalidField } from '../support/http-assertions.ts'
import { queryFile, seedOrganization } from '../support/sqlite-file.ts'

interface CreatedKey {
  id: string
  name: string
  prefix: string
  role: string
  sessionIds: string[] | null
  expiresAt: string | null
  key: string
}

describe('API keys API', () => {
  let gateway: TestGateway

  before(async () => {
    gateway = await startTestGateway()
  })
  after(async () => {
    await gateway.close()
  })

  const createKey = async (body: Record<string, unknown>): Promise<CreatedKey> => {
    const response = await gateway.request('POST', '/api/v1/api-keys', { body: { name: 'a key', ...body } })
    assert.equal(response.statusCode, 201, response.body)
    return response.json() as CreatedKey
  }
  const listSessions = (key: string, headers?: Record<string, string>) =>
    gateway.request('GET', '/api/v1/sessions', headers ? { key: null, headers } : { key })

  describe('happy', () => {
    it('creates a key that is shown once, starts with its prefix and works at once', async () => {
      const created = await createKey({ name: 'ci', role: 'operator' })
      assert.match(created.id, /^key_/)
      assert.equal(created.name, 'ci')
      assert.equal(created.role, 'operator')
      assert.equal(created.sessionIds, null)
      assert.equal(created.expiresAt, null)
      assert.match(created.key, /^wag_[0-9A-Za-z]{40}$/)
      assert.ok(created.key.startsWith(created.prefix), 'the visible prefix is the start of the key')
      assert.ok(created.prefix.length < created.key.length / 2, 'the prefix does not give the key away')
      assert.equal((await listSessions(created.key)).statusCode, 200)
    })

    it('accepts a key in Authorization: Bearer as well as X-API-Key', async () => {
      const created = await createKey({ role: 'viewer' })
      assert.equal((await listSessions('', { authorization: `Bearer ${created.key}` })).statusCode, 200)
      assert.equal((await listSessions('', { 'x-api-key': created.key })).statusCode, 200)
    })

    it('lists keys without ever showing a key or its hash', async () => {
      const created = await createKey({ name: 'listed', role: 'viewer' })
      const response = await gateway.request('GET', '/api/v1/api-keys')
      assert.equal(response.statusCode, 200, response.body)
      const listed = response.json().items.find((k: { id: string }) => k.id === created.id)
      assert.deepEqual(Object.keys(listed).sort(), [
        'createdAt',
        'expiresAt',
        'id',
        'lastUsedAt',
        'name',
        'prefix',
        'role',
        'sessionIds',
      ])
      assert.equal(listed.prefix, created.prefix)
      const hash = createHash('sha256').update(created.key).digest('hex')
      for (const secret of [created.key, gateway.adminKey, hash]) {
        assert.ok(!response.body.includes(secret), 'no key and no hash in the list')
      }
      const [stored] = queryFile<{ hash: string }>(
        gateway.dataDir,
        'SELECT hash FROM api_keys WHERE id = ?',
        created.id,
      )
      assert.equal(stored?.hash, hash, 'the store holds the hash, not the key')
    })

    it('revokes a key: its very next request fails and it leaves the list', async () => {
      const created = await createKey({ role: 'admin' })
      assert.equal((await listSessions(created.key)).statusCode, 200, 'cached as a good key')
      const revoked = await gateway.request('DELETE', `/api/v1/api-keys/${created.id}`)
      assert.equal(revoked.statusCode, 204, revoked.body)
      assertError(await listSessions(created.key), 401, 'unauthorized')
      const list = (await gateway.request('GET', '/api/v1/api-keys')).json()
      assert.ok(!list.items.some((k: { id: string }) => k.id === created.id))
    })

    it('lets a key with an expiry work until then and fail from then on', async () => {
      const created = await createKey({
        role: 'viewer',
        expiresAt: new Date(Date.now() + 1_000).toISOString(),
      })
      assert.ok(Date.parse(created.expiresAt ?? '') > Date.now())
      assert.equal((await listSessions(created.key)).statusCode, 200)
      await new Promise((resolve) =>
        setTimeout(resolve, Date.parse(created.expiresAt ?? '') - Date.now() + 50),
      )
      const error = assertError(await listSessions(created.key), 401, 'unauthorized')
      assert.match(error.message, /expired/)
    })
  })

  describe('error', () => {
    it('lets no admin key limited to sessions create, list or revoke keys', async () => {
      const bot = await gateway.request('POST', '/api/v1/sessions', {
        body: { name: 'somebot', sandbox: true },
      })
      assert.equal(bot.statusCode, 201, bot.body)
      const scoped = await createKey({ name: 'scoped admin', role: 'admin', sessionIds: [bot.json().id] })
      const unscoped = await createKey({ name: 'kept', role: 'viewer' })
      const as = { key: scoped.key }
      // Before, it could mint an unscoped admin key: every session, every webhook.
      const minted = await gateway.request('POST', '/api/v1/api-keys', {
        ...as,
        body: { name: 'escalated', role: 'admin' },
      })
      assert.match(assertError(minted, 403, 'forbidden').message, /not limited to sessions/)
      assertError(await gateway.request('GET', '/api/v1/api-keys', as), 403, 'forbidden')
      assertError(await gateway.request('DELETE', `/api/v1/api-keys/${unscoped.id}`, as), 403, 'forbidden')
      assert.equal((await listSessions(unscoped.key)).statusCode, 200, 'the other key still works')
      const names = (await gateway.request('GET', '/api/v1/api-keys'))
        .json()
        .items.map((k: { name: string }) => k.name)
      assert.ok(!names.includes('escalated'))
    })

    it('scopes a key to sessions named by id or name, and refuses one the organization does not have', async () => {
      const bot = (
        await gateway.request('POST', '/api/v1/sessions', { body: { name: 'named-bot', sandbox: true } })
      ).json()
      const byName = await createKey({ role: 'operator', sessionIds: ['named-bot', bot.id] })
      assert.deepEqual(byName.sessionIds, [bot.id], 'stored as the id, once')
      const own = await gateway.request('GET', '/api/v1/sessions/named-bot', { key: byName.key })
      assert.equal(own.statusCode, 200, own.body)
      const unknown = await gateway.request('POST', '/api/v1/api-keys', {
        body: { name: 'nowhere', role: 'viewer', sessionIds: [bot.id, 'no-such-bot'] },
      })
      assert.match(assertInvalidField(unknown, 'body.sessionIds.1').message, /no-such-bot/)
      // Mistakes that would otherwise make a key for every session.
      assertInvalidField(
        await gateway.request('POST', '/api/v1/api-keys', {
          body: { name: 'empty', role: 'admin', sessionIds: [] },
        }),
        'body.sessionIds',
      )
      const misspelt = await gateway.request('POST', '/api/v1/api-keys', {
        body: { name: 'misspelt', role: 'admin', sessionId: [bot.id] },
      })
      assert.match(assertError(misspelt, 400, 'invalid_request').message, /sessionId/)
    })

    it('rejects an expiry in the past, naming body.expiresAt', async () => {
      assertInvalidField(
        await gateway.request('POST', '/api/v1/api-keys', {
          body: { name: 'late', role: 'viewer', expiresAt: new Date(Date.now() - 60_000).toISOString() },
        }),
        'body.expiresAt',
      )
    })

    it('rejects an expiry that is not a date-time', async () => {
      assertInvalidField(
        await gateway.request('POST', '/api/v1/api-keys', {
          body: { name: 'late', role: 'viewer', expiresAt: 'tomorrow' },
        }),
        'body.expiresAt',
      )
    })

    it('rejects an unknown role and a missing name', async () => {
      assertInvalidField(
        await gateway.request('POST', '/api/v1/api-keys', { body: { name: 'x', role: 'owner' } }),
        'body.role',
      )
      assertInvalidField(
        await gateway.request('POST', '/api/v1/api-keys', { body: { role: 'viewer' } }),
        'body.name',
      )
    })

    it('answers 404 when revoking a key that does not exist or is already revoked', async () => {
      assertError(await gateway.request('DELETE', '/api/v1/api-keys/key_doesnotexist'), 404, 'not_found')
      const created = await createKey({ role: 'viewer' })
      assert.equal((await gateway.request('DELETE', `/api/v1/api-keys/${created.id}`)).statusCode, 204)
      assertError(await gateway.request('DELETE', `/api/v1/api-keys/${created.id}`), 404, 'not_found')
    })
  })

  describe('security', () => {
    it('lets only admins create, list and revoke keys', async () => {
      const victim = await createKey({ role: 'viewer' })
      for (const role of ['viewer', 'operator']) {
        const { key } = await createKey({ role })
        const create = assertError(
          await gateway.request('POST', '/api/v1/api-keys', {
            body: { name: 'escalate', role: 'admin' },
            key,
          }),
          403,
          'forbidden',
        )
        assert.match(create.message, /admin/)
        assertError(await gateway.request('GET', '/api/v1/api-keys', { key }), 403, 'forbidden')
        assertError(
          await gateway.request('DELETE', `/api/v1/api-keys/${victim.id}`, { key }),
          403,
          'forbidden',
        )
      }
      assert.equal((await listSessions(victim.key)).statusCode, 200, 'the victim key still works')
    })

    it('rejects a key that differs from a real one in its last character', async () => {
      const created = await createKey({ role: 'viewer' })
      const last = created.key.at(-1) === 'a' ? 'b' : 'a'
      assertError(await listSessions(`${created.key.slice(0, -1)}${last}`), 401, 'unauthorized')
      assertError(await listSessions(created.prefix), 401, 'unauthorized')
    })

    it("keeps an organization's keys from another organization's admin", async () => {
      const mine = await createKey({ name: 'mine', role: 'viewer' })
      const other = seedOrganization(gateway.dataDir)
      const list = await gateway.request('GET', '/api/v1/api-keys', { key: other.key })
      assert.equal(list.statusCode, 200, list.body)
      assert.deepEqual(
        list.json().items.map((k: { name: string }) => k.name),
        ['other tenant admin'],
      )
      assertError(
        await gateway.request('DELETE', `/api/v1/api-keys/${mine.id}`, { key: other.key }),
        404,
        'not_found',
      )
      assert.equal((await listSessions(mine.key)).statusCode, 200, 'the key still works')
    })
  })
})
