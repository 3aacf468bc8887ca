import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AppError } from '../../src/domain/errors.ts'
import { SessionsRepository } from '../../src/store/sessions.repository.ts'
import { createOrganization, createSession, type StoreContext, sessionRecord, tick } from './fixtures.ts'

const codeOf = (error: unknown) => (error instanceof AppError ? error.code : error)

export function sessionsSuite(context: StoreContext): void {
  describe('sessions', () => {
    it('should read back a created session with booleans and JSON intact', async () => {
      const organizationId = await createOrganization(context)
      const record = sessionRecord(organizationId, {
        sandbox: true,
        desiredState: 'running',
        phone: '15550001111',
        deviceId: 7,
        connectedAt: tick(),
        statusHistory: [
          { status: 'starting', at: 1 },
          { status: 'failed', at: 2, reason: 'connection lost (428)' },
        ],
      })
      await context.repositories.sessions.create(record)
      assert.deepEqual(await context.repositories.sessions.getById(organizationId, record.id), record)
      assert.deepEqual(await context.repositories.sessions.getByName(organizationId, record.name), record)
      assert.deepEqual(await context.repositories.sessions.getByIdUnscoped(record.id), record)
    })

    it('should not show a session to another organization', async () => {
      const organizationId = await createOrganization(context)
      const other = await createOrganization(context)
      const record = await createSession(context, organizationId)
      assert.equal(await context.repositories.sessions.getById(other, record.id), undefined)
      assert.equal(await context.repositories.sessions.getByName(other, record.name), undefined)
    })

    it('should refuse a duplicate name in one organization with a conflict error', async () => {
      const organizationId = await createOrganization(context)
      const first = await createSession(context, organizationId, { name: 'support' })
      await assert.rejects(
        context.repositories.sessions.create(sessionRecord(organizationId, { name: first.name })),
        (error) => codeOf(error) === 'conflict',
      )
      const elsewhere = await createOrganization(context)
      await context.repositories.sessions.create(sessionRecord(elsewhere, { name: first.name }))
    })

    it('should page oldest first with a stable cursor and the total of all pages', async () => {
      const organizationId = await createOrganization(context)
      const at = tick()
      // Three share one timestamp, so the id breaks the tie.
      const created = [
        await createSession(context, organizationId, { createdAt: at }),
        await createSession(context, organizationId, { createdAt: at }),
        await createSession(context, organizationId, { createdAt: at }),
        await createSession(context, organizationId, { createdAt: at + 1 }),
        await createSession(context, organizationId, { createdAt: at - 1 }),
      ]
      const expected = created
        .toSorted((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
        .map((s) => s.id)
      const seen: string[] = []
      let cursor: string | undefined
      for (let page = 0; page < 3; page++) {
        const result = await context.repositories.sessions.listByOrganization(organizationId, {
          limit: 2,
          cursor,
        })
        assert.equal(result.total, 5)
        seen.push(...result.items.map((s) => s.id))
        cursor = result.nextCursor ?? undefined
        assert.equal(result.nextCursor === null, page === 2)
      }
      assert.deepEqual(seen, expected)
    })

    it('should filter by status and by session scope, counting only matches', async () => {
      const organizationId = await createOrganization(context)
      const ready = await createSession(context, organizationId, { status: 'ready' })
      await createSession(context, organizationId, { status: 'ready' })
      await createSession(context, organizationId, { status: 'failed' })
      const byStatus = await context.repositories.sessions.listByOrganization(organizationId, {
        status: 'ready',
        limit: 10,
      })
      assert.equal(byStatus.total, 2)
      assert.ok(byStatus.items.every((s) => s.status === 'ready'))
      const scoped = await context.repositories.sessions.listByOrganization(organizationId, {
        ids: [ready.id, 'ses_elsewhere'],
        limit: 10,
      })
      assert.deepEqual(
        scoped.items.map((s) => s.id),
        [ready.id],
      )
      assert.equal(scoped.total, 1)
      const none = await context.repositories.sessions.listByOrganization(organizationId, {
        ids: [],
        limit: 10,
      })
      assert.deepEqual(none, { items: [], nextCursor: null, total: 0 })
    })

    it('should reject a cursor it did not issue as an invalid request', async () => {
      const organizationId = await createOrganization(context)
      await assert.rejects(
        context.repositories.sessions.listByOrganization(organizationId, {
          cursor: 'not-a-cursor',
          limit: 5,
        }),
        (error) => codeOf(error) === 'invalid_request',
      )
    })

    it('should update only the patched fields and return the updated row', async () => {
      const organizationId = await createOrganization(context)
      const record = await createSession(context, organizationId)
      const history = [...record.statusHistory, { status: 'ready' as const, at: tick() }]
      const updated = await context.repositories.sessions.update(record.id, {
        status: 'ready',
        statusHistory: history,
        sandbox: true,
        jid: '15550001111:3@s.whatsapp.net',
        reconnectCount: 2,
        updatedAt: 99,
      })
      const expected = {
        ...record,
        status: 'ready',
        statusHistory: history,
        sandbox: true,
        jid: '15550001111:3@s.whatsapp.net',
        reconnectCount: 2,
        updatedAt: 99,
      }
      assert.deepEqual(updated, expected)
      assert.deepEqual(await context.repositories.sessions.getById(organizationId, record.id), expected)
      assert.deepEqual(await context.repositories.sessions.update(record.id, {}), expected)
    })

    it('should report a missing session on update as not found', async () => {
      await assert.rejects(
        context.repositories.sessions.update('ses_missing', { status: 'ready' }),
        (error) => codeOf(error) === 'not_found',
      )
    })

    it('should list sessions that should run across organizations, and count by status', async () => {
      const one = await createSession(context, await createOrganization(context), { desiredState: 'running' })
      const two = await createSession(context, await createOrganization(context), { desiredState: 'running' })
      const stopped = await createSession(context, await createOrganization(context))
      const running = (await context.repositories.sessions.listDesiredRunning()).map((s) => s.id)
      assert.ok(running.includes(one.id) && running.includes(two.id))
      assert.ok(!running.includes(stopped.id))
      const before = await context.repositories.sessions.countByStatus()
      await createSession(context, stopped.organizationId, { status: 'logged_out' })
      const after = await context.repositories.sessions.countByStatus()
      assert.equal(after.logged_out, (before.logged_out ?? 0) + 1)
    })

    it('should delete a session together with its credentials and keys', async () => {
      const organizationId = await createOrganization(context)
      const record = await createSession(context, organizationId)
      const { authState, sessions } = context.repositories
      await authState.saveCreds(record.id, 'sealed-creds')
      await authState.setKeys(record.id, [{ type: 'pre-key', id: '1', value: 'sealed-key' }])
      await sessions.delete(record.id)
      assert.equal(await sessions.getById(organizationId, record.id), undefined)
      assert.equal(await authState.getCreds(record.id), undefined)
      assert.equal(await authState.countKeys(record.id), 0)
    })

    it('should reuse a recent read for a second, and never one older than its own writes', async () => {
      let now = 1_000_000
      const sessions = new SessionsRepository(context.database.db, () => now)
      const organizationId = await createOrganization(context)
      const record = await createSession(context, organizationId, { pushName: 'First' })
      assert.equal((await sessions.getRecent(record.id))?.pushName, 'First')

      // Changed behind its back (another node): the recent read stands until it is a second old.
      await context.database.db
        .updateTable('sessions')
        .set({ push_name: 'Elsewhere' })
        .where('id', '=', record.id)
        .execute()
      now += 999
      assert.equal((await sessions.getRecent(record.id))?.pushName, 'First')
      now += 1
      assert.equal((await sessions.getRecent(record.id))?.pushName, 'Elsewhere')

      // Changed through it: the next read is fresh at once.
      await sessions.update(record.id, { pushName: 'Renamed' })
      assert.equal((await sessions.getRecent(record.id))?.pushName, 'Renamed')
      await sessions.delete(record.id)
      assert.equal(await sessions.getRecent(record.id), undefined)
    })

    it('should not keep a read that overlapped a write', async () => {
      const sessions = new SessionsRepository(context.database.db)
      const organizationId = await createOrganization(context)
      const record = await createSession(context, organizationId, { pushName: 'Old' })
      const reading = sessions.getRecent(record.id)
      await sessions.update(record.id, { pushName: 'New' })
      await reading
      assert.equal((await sessions.getRecent(record.id))?.pushName, 'New')
    })
  })
}
