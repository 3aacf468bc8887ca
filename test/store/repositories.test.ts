import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { type Database, openDatabase } from '../../src/store/db.ts'
import { freshPostgresDatabase } from '../support/postgres.ts'
import { authAndEventsSuite } from './auth-events.suite.ts'
import { useStore } from './fixtures.ts'
import { keysAndOrganizationsSuite } from './keys-organizations.suite.ts'
import { messagingSuite } from './messaging.suite.ts'
import { retentionSuite } from './retention.suite.ts'
import { sessionsSuite } from './sessions.suite.ts'

/** One suite, every dialect: the store must behave the same on SQLite and Postgres. */
function repositorySuite(open: () => Promise<Database>): void {
  const context = useStore(open)
  keysAndOrganizationsSuite(context)
  sessionsSuite(context)
  authAndEventsSuite(context)
  messagingSuite(context)
  retentionSuite(context)
}

// Both awaited before any describe: suites registered after a top-level await are not run.
const dataDir = await mkdtemp(join(tmpdir(), 'wagate-store-'))
const postgres = await freshPostgresDatabase('store')
after(() => rm(dataDir, { recursive: true, force: true }))

describe('store on SQLite', () => {
  repositorySuite(() => openDatabase({ dataDir: join(dataDir, 'nested') }))
})

describe('store on Postgres', () => {
  if (!postgres) {
    // A skipped test, not a skipped suite, so the run's summary counts it as skipped.
    it('should pass the repository suite', { skip: 'WAGATE_TEST_DATABASE_URL is not set' }, () => {})
    return
  }
  repositorySuite(() => openDatabase({ databaseUrl: postgres.url, dataDir }))
  // Registered after the suite's own hooks, so the pool is closed before the drop.
  after(() => postgres.drop())
})
