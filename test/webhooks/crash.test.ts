import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { newId } from '../../src/domain/ids.ts'
import { SecretBox } from '../../src/security/secret-box.ts'
import { migrateToLatest, openDatabase } from '../../src/store/db.ts'
import { OrganizationsRepository } from '../../src/store/organizations.repository.ts'
import { createWebhookModule } from '../../src/webhooks/webhooks.module.ts'
import { eventually } from '../support/wait.ts'
import { CRASH_TUNING } from './crash-tuning.ts'
import { Receiver } from './receiver.ts'

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url))

describe('webhook delivery across a crash', () => {
  let dataDir: string
  let receiver: Receiver

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'wagate-webhook-crash-'))
    receiver = await Receiver.start()
  })
  after(async () => {
    await receiver.stop()
    await rm(dataDir, { recursive: true, force: true })
  })

  it('delivers every stored event at least once after kill -9 mid-burst and a restart', async () => {
    const key = randomBytes(32)
    const open = async () => {
      const database = await openDatabase({ dataDir })
      const module = createWebhookModule({
        database,
        secretBox: new SecretBox(key),
        newId,
        allowPrivateTargets: true,
        ...CRASH_TUNING,
      })
      return { database, module }
    }

    // Before: an organization with one webhook; the store closed while the child runs.
    const organizationId = newId('organization')
    {
      const { database, module } = await open()
      await migrateToLatest(database)
      await new OrganizationsRepository(database.db).create({
        id: organizationId,
        name: 'Acme',
        createdAt: Date.now(),
      })
      await module.service.create(organizationId, { url: receiver.url() })
      await module.close()
      await database.close()
    }

    receiver.respond = () => ({ status: 200, delayMs: 50 })
    const child = spawn(process.execPath, [CHILD, dataDir, organizationId, key.toString('hex'), '400'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const exited = once(child, 'exit')
    try {
      await eventually(() => receiver.requests.length >= 30, 'the burst to be under way', 15_000)
    } finally {
      // Killed however the wait ended: a child left running would outlive the test run.
      child.kill('SIGKILL')
      await exited
    }

    // After: a new process (here, this one) opens the same store and finishes the job.
    const { database, module } = await open()
    try {
      const stored = (
        await database.db
          .selectFrom('events')
          .select('id')
          .where('organization_id', '=', organizationId)
          .execute()
      ).map((row) => row.id)
      assert.ok(stored.length < 400, 'the child was killed before the burst ended')
      // Owed: not recorded as delivered — in flight at the kill (perhaps received, unanswered) or not yet tried.
      const owed = await database.db
        .selectFrom('webhook_deliveries')
        .select('event_id')
        .where('status', '=', 'pending')
        .execute()
      assert.ok(owed.length > 0, 'some deliveries were still owed at the kill')

      module.worker.start()
      const settled = async () => {
        const rows = await database.db
          .selectFrom('webhook_deliveries')
          .select('status')
          .where('organization_id', '=', organizationId)
          .execute()
        return rows.length === stored.length && rows.every((row) => row.status === 'delivered')
      }
      await eventually(settled, 'every delivery to be recorded as delivered', 20_000)
      await module.worker.stop()

      const received = new Set(receiver.events().map((event) => event.id))
      assert.deepEqual(
        stored.filter((id) => !received.has(id)),
        [],
        'every stored event reached the receiver (at least once)',
      )
    } finally {
      await module.close()
      await database.close()
    }
  })
})
