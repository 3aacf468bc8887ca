import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { newId } from '../../src/domain/ids.ts'
import { migrateToLatest } from '../../src/store/db.ts'
import { isUniqueViolation } from '../../src/store/dialect-sql.ts'
import type { ApiKeyRecord } from '../../src/store/index.ts'
import { createOrganization, type StoreContext, tick } from './fixtures.ts'

function apiKey(
  organizationId: string,
  overrides: Partial<ApiKeyRecord> = {},
): ApiKeyRecord & { hash: string } {
  const secret = `wag_${newId('apiKey')}`
  return {
    id: newId('apiKey'),
    organizationId,
    name: 'ci',
    prefix: secret.slice(0, 16),
    hash: createHash('sha256').update(secret).digest('hex'),
    role: 'operator',
    sessionIds: null,
    expiresAt: null,
    lastUsedAt: null,
    createdAt: tick(),
    revokedAt: null,
    ...overrides,
  }
}

export function keysAndOrganizationsSuite(context: StoreContext): void {
  describe('migrations', () => {
    it('should apply nothing and not fail when migrated again', async () => {
      const again = await migrateToLatest(context.database)
      assert.deepEqual(again.results, [])
      await migrateToLatest(context.database)
    })
  })

  describe('organizations', () => {
    it('should read back a created organization by id', async () => {
      const id = newId('organization')
      await context.repositories.organizations.create({ id, name: 'Globex', createdAt: 1234 })
      assert.deepEqual(await context.repositories.organizations.getById(id), {
        id,
        name: 'Globex',
        createdAt: 1234,
      })
      assert.equal(await context.repositories.organizations.getById('org_missing'), undefined)
    })

    it('should return the oldest organization as the first one', async () => {
      const oldest = { id: newId('organization'), name: 'Default', createdAt: 1 }
      await createOrganization(context)
      await context.repositories.organizations.create(oldest)
      assert.deepEqual(await context.repositories.organizations.getFirst(), oldest)
      const all = await context.repositories.organizations.list()
      assert.deepEqual(all[0], oldest)
      assert.deepEqual(
        all.map((o) => o.createdAt),
        all.map((o) => o.createdAt).toSorted((a, b) => a - b),
      )
    })
  })

  describe('api keys', () => {
    it('should find a key by its hash with every field intact', async () => {
      const organizationId = await createOrganization(context)
      const { hash, ...record } = apiKey(organizationId, {
        sessionIds: ['ses_a', 'ses_b'],
        expiresAt: tick(),
      })
      await context.repositories.apiKeys.create({ ...record, hash })
      assert.deepEqual(await context.repositories.apiKeys.getByHash(hash), record)
      assert.equal(await context.repositories.apiKeys.getByHash('0'.repeat(64)), undefined)
    })

    it('should not return a key to another organization', async () => {
      const organizationId = await createOrganization(context)
      const other = await createOrganization(context)
      const key = apiKey(organizationId)
      await context.repositories.apiKeys.create(key)
      assert.equal((await context.repositories.apiKeys.getById(organizationId, key.id))?.id, key.id)
      assert.equal(await context.repositories.apiKeys.getById(other, key.id), undefined)
      assert.deepEqual(await context.repositories.apiKeys.listByOrganization(other), [])
    })

    it('should list an organization’s keys oldest first', async () => {
      const organizationId = await createOrganization(context)
      const first = apiKey(organizationId)
      const second = apiKey(organizationId)
      await context.repositories.apiKeys.create(second)
      await context.repositories.apiKeys.create(first)
      const listed = await context.repositories.apiKeys.listByOrganization(organizationId)
      assert.deepEqual(
        listed.map((k) => k.id),
        [first.id, second.id],
      )
    })

    it('should revoke an active key once and only in its organization', async () => {
      const organizationId = await createOrganization(context)
      const other = await createOrganization(context)
      const key = apiKey(organizationId)
      await context.repositories.apiKeys.create(key)
      assert.equal(await context.repositories.apiKeys.revoke(other, key.id, 10), false)
      assert.equal(await context.repositories.apiKeys.revoke(organizationId, key.id, 20), true)
      assert.equal(await context.repositories.apiKeys.revoke(organizationId, key.id, 30), false)
      assert.equal((await context.repositories.apiKeys.getByHash(key.hash))?.revokedAt, 20)
    })

    it('should count every key, revoked ones included', async () => {
      const organizationId = await createOrganization(context)
      const before = await context.repositories.apiKeys.count()
      const key = apiKey(organizationId)
      await context.repositories.apiKeys.create(key)
      await context.repositories.apiKeys.revoke(organizationId, key.id, tick())
      assert.equal(await context.repositories.apiKeys.count(), before + 1)
    })

    it('should touch many keys in one call and never move last use backwards', async () => {
      const organizationId = await createOrganization(context)
      const keys = [apiKey(organizationId), apiKey(organizationId), apiKey(organizationId)]
      for (const key of keys) await context.repositories.apiKeys.create(key)
      await context.repositories.apiKeys.touchLastUsed([keys[0]!.id, keys[1]!.id], 500)
      await context.repositories.apiKeys.touchLastUsed([keys[0]!.id], 400)
      await context.repositories.apiKeys.touchLastUsed([], 999)
      const lastUsed = await Promise.all(
        keys.map(async (k) => (await context.repositories.apiKeys.getByHash(k.hash))?.lastUsedAt),
      )
      assert.deepEqual(lastUsed, [500, 500, null])
    })

    it('should reject a second key with the same hash as a unique violation', async () => {
      const organizationId = await createOrganization(context)
      const key = apiKey(organizationId)
      await context.repositories.apiKeys.create(key)
      const error = await context.repositories.apiKeys
        .create({ ...apiKey(organizationId), hash: key.hash })
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      assert.ok(error, 'the duplicate insert should fail')
      assert.equal(isUniqueViolation(error), true)
      assert.equal(isUniqueViolation(new Error('something else')), false)
    })
  })
}
