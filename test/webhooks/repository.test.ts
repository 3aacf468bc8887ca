import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import type { Database } from '../../src/store/db.ts'
import { openDatabase } from '../../src/store/db.ts'
import { freshPostgresDatabase } from '../support/postgres.ts'
import { deliveriesStoreSuite } from './deliveries-store.suite.ts'
import { useWebhookStore } from './store-fixtures.ts'
import { webhooksStoreSuite } from './webhooks-store.suite.ts'

/** One suite, every dialect: the webhook store must behave the same on SQLite and Postgres. */
function webhooksRepositorySuite(open: () => Promise<Database>): void {
  const context = useWebhookStore(open)
  webhooksStoreSuite(context)
  deliveriesStoreSuite(context)
}

// Both awaited before any describe: suites registered after a top-level await are not run.
const dataDir = await mkdtemp(join(tmpdir(), 'wagate-webhook-store-'))
const postgres = await freshPostgresDatabase('webhooks')
after(() => rm(dataDir, { recursive: true, force: true }))

describe('webhook store on SQLite', () => {
  webhooksRepositorySuite(() => openDatabase({ dataDir }))
})

describe('webhook store on Postgres', () => {
  if (!postgres) {
    it('should pass the webhook repository suite', { skip: 'WAGATE_TEST_DATABASE_URL is not set' }, () => {})
    return
  }
  webhooksRepositorySuite(() => openDatabase({ databaseUrl: postgres.url, dataDir }))
  after(() => postgres.drop())
})
