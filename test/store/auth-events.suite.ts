import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { newId } from '../../src/domain/ids.ts'
import type { AuthKeyEntry, EventRecord } from '../../src/store/index.ts'
import { createOrganization, createSession, type StoreContext, tick } from './fixtures.ts'

const event = (organizationId: string, overrides: Partial<EventRecord> = {}): EventRecord => ({
  id: newId('event'),
  organizationId,
  sessionId: null,
  type: 'session.status',
  payload: { status: 'ready', nested: [1, 'two'] },
  createdAt: tick(),
  ...overrides,
})

export function authAndEventsSuite(context: StoreContext): void {
  describe('auth state', () => {
    it('should save credentials once per session, replacing the previous ones', async () => {
      const { id } = await createSession(context, await createOrganization(context))
      const { authState } = context.repositories
      assert.equal(await authState.getCreds(id), undefined)
      await authState.saveCreds(id, 'first')
      await authState.saveCreds(id, 'second')
      assert.equal(await authState.getCreds(id), 'second')
    })

    it('should set, overwrite and delete keys, returning only those asked for', async () => {
      const { id } = await createSession(context, await createOrganization(context))
      const { authState } = context.repositories
      await authState.setKeys(id, [
        { type: 'pre-key', id: '1', value: 'a' },
        { type: 'pre-key', id: '2', value: 'b' },
        { type: 'session', id: '1', value: 'c' },
      ])
      await authState.setKeys(id, [
        { type: 'pre-key', id: '1', value: 'a2' },
        { type: 'pre-key', id: '2', value: null },
      ])
      assert.deepEqual(await authState.getKeys(id, 'pre-key', ['1', '2', '3']), new Map([['1', 'a2']]))
      assert.deepEqual(await authState.getKeys(id, 'session', ['1']), new Map([['1', 'c']]))
      assert.equal(await authState.countKeys(id), 2)
    })

    it('should handle batches larger than one statement', async () => {
      const { id } = await createSession(context, await createOrganization(context))
      const ids = Array.from({ length: 1_200 }, (_, i) => String(i))
      await context.repositories.authState.setKeys(
        id,
        ids.map((key) => ({ type: 'pre-key', id: key, value: `v${key}` })),
      )
      const found = await context.repositories.authState.getKeys(id, 'pre-key', ids)
      assert.equal(found.size, 1_200)
      assert.equal(found.get('1199'), 'v1199')
    })

    it('should apply none of a batch when one entry fails', async () => {
      const { id } = await createSession(context, await createOrganization(context))
      const { authState } = context.repositories
      await authState.setKeys(id, [{ type: 'pre-key', id: 'kept', value: 'old' }])
      const batch: AuthKeyEntry[] = [
        { type: 'pre-key', id: 'kept', value: null },
        ...Array.from({ length: 600 }, (_, i) => ({ type: 'session', id: String(i), value: 'new' })),
        // A NULL type breaks the NOT NULL constraint in the last statement of the batch.
        { type: null as unknown as string, id: 'bad', value: 'x' },
      ]
      await assert.rejects(authState.setKeys(id, batch))
      assert.deepEqual(await authState.getKeys(id, 'pre-key', ['kept']), new Map([['kept', 'old']]))
      assert.equal(await authState.countKeys(id), 1)
    })

    it('should roll keys back with the caller’s transaction', async () => {
      const { id } = await createSession(context, await createOrganization(context))
      const { authState } = context.repositories
      await assert.rejects(
        context.database.db.transaction().execute(async (trx) => {
          await authState.setKeys(id, [{ type: 'pre-key', id: '1', value: 'a' }], trx)
          throw new Error('caller gave up')
        }),
        /caller gave up/,
      )
      assert.equal(await authState.countKeys(id), 0)
    })

    it('should clear credentials and keys of one session only', async () => {
      const organizationId = await createOrganization(context)
      const cleared = await createSession(context, organizationId)
      const kept = await createSession(context, organizationId)
      const { authState } = context.repositories
      for (const { id } of [cleared, kept]) {
        await authState.saveCreds(id, 'creds')
        await authState.setKeys(id, [{ type: 'pre-key', id: '1', value: 'a' }])
      }
      await authState.clear(cleared.id)
      assert.equal(await authState.getCreds(cleared.id), undefined)
      assert.equal(await authState.countKeys(cleared.id), 0)
      assert.equal(await authState.getCreds(kept.id), 'creds')
      assert.equal(await authState.countKeys(kept.id), 1)
    })
  })

  describe('events', () => {
    it('should list newest first, filtered by session, types and a time range', async () => {
      const organizationId = await createOrganization(context)
      const session = await createSession(context, organizationId)
      const old = event(organizationId, { sessionId: session.id })
      const qr = event(organizationId, { sessionId: session.id, type: 'session.qr' })
      const status = event(organizationId, { sessionId: session.id })
      const unrelated = event(organizationId)
      await context.repositories.events.append([old, qr, status, unrelated])
      await context.repositories.events.append([])
      const { events } = context.repositories
      assert.deepEqual(await events.list(organizationId, { limit: 10 }), [unrelated, status, qr, old])
      assert.deepEqual(await events.list(organizationId, { sessionId: session.id, limit: 2 }), [status, qr])
      assert.deepEqual(await events.list(organizationId, { types: ['session.qr'], limit: 10 }), [qr])
      assert.deepEqual(await events.list(organizationId, { since: qr.createdAt, limit: 10 }), [
        unrelated,
        status,
        qr,
      ])
      assert.deepEqual(await events.list(organizationId, { until: status.createdAt, limit: 10 }), [qr, old])
      assert.deepEqual(
        await events.list(organizationId, { since: qr.createdAt, until: unrelated.createdAt, limit: 10 }),
        [status, qr],
        'since is inclusive, until exclusive',
      )
      assert.deepEqual(await events.list(organizationId, { types: [], limit: 10 }), [])
      assert.deepEqual(await events.list(await createOrganization(context), { limit: 10 }), [])
    })

    it('should append a batch larger than one statement may bind, all or nothing', async () => {
      const organizationId = await createOrganization(context)
      const { events } = context.repositories
      // 6,000 events are 36,000 bound values: past SQLite's 32,766 for a single insert.
      const batch = Array.from({ length: 6_000 }, () => event(organizationId))
      await events.append(batch)
      const stored = await events.list(organizationId, { limit: 10_000 })
      assert.equal(stored.length, batch.length)
      assert.deepEqual(stored[0], batch.at(-1))

      const other = await createOrganization(context)
      const failing = Array.from({ length: 2_500 }, () => event(other))
      // The last slice repeats an id: the slices written before it are rolled back.
      failing.push({ ...event(other), id: failing[0]!.id })
      await assert.rejects(events.append(failing))
      assert.deepEqual(await events.list(other, { limit: 10 }), [])
    })

    it('should store a change and its event together or not at all', async () => {
      const organizationId = await createOrganization(context)
      const session = await createSession(context, organizationId)
      const { events, sessions } = context.repositories
      await assert.rejects(
        context.database.db.transaction().execute(async (trx) => {
          await sessions.update(session.id, { status: 'ready' }, trx)
          await events.append([event(organizationId, { sessionId: session.id })], trx)
          throw new Error('publish failed')
        }),
      )
      assert.equal((await sessions.getById(organizationId, session.id))?.status, 'stopped')
      assert.deepEqual(await events.list(organizationId, { limit: 10 }), [])
    })
  })

  describe('concurrency', () => {
    it('should serve concurrent writes and a transaction without losing or interleaving any', async () => {
      const organizationId = await createOrganization(context)
      const { events, sessions } = context.repositories
      const session = await createSession(context, organizationId)
      await Promise.all([
        ...Array.from({ length: 40 }, () => events.append([event(organizationId)])),
        context.database.db.transaction().execute(async (trx) => {
          await sessions.update(session.id, { reconnectCount: 1 }, trx)
          await events.append([event(organizationId, { sessionId: session.id })], trx)
        }),
        ...Array.from({ length: 10 }, () => createSession(context, organizationId)),
      ])
      assert.equal((await events.list(organizationId, { limit: 100 })).length, 41)
      assert.equal((await sessions.listByOrganization(organizationId, { limit: 1 })).total, 11)
    })
  })
}
