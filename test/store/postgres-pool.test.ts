import assert from 'node:assert/strict'
import { tmpdir } from 'node:os'
import { after, describe, it } from 'node:test'
import { sql } from 'kysely'
import pg from 'pg'
import { openDatabase } from '../../src/store/db.ts'
import { freshPostgresDatabase } from '../support/postgres.ts'

const postgres = await freshPostgresDatabase('pool')

describe('the Postgres pool', () => {
  if (!postgres) {
    it('should outlive its connections', { skip: 'WAGATE_TEST_DATABASE_URL is not set' }, () => {})
    return
  }
  after(() => postgres.drop())

  it('should outlive idle connections the server ends, and go on with new ones', async () => {
    const warnings: string[] = []
    const logger = { warn: (_: unknown, message: string) => warnings.push(message) } as never
    const database = await openDatabase({ databaseUrl: postgres.url, dataDir: tmpdir(), logger })
    try {
      await sql`select 1`.execute(database.db)
      // As a server restart or an administrator would: every other connection to the database ended.
      const admin = new pg.Client({ connectionString: postgres.url })
      await admin.connect()
      const ended = await admin.query(
        'select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      )
      await admin.end()
      assert.ok(ended.rowCount && ended.rowCount > 0, 'the pool had an idle connection to end')
      await new Promise((resolve) => setTimeout(resolve, 200))
      const { rows } = await sql<{ one: number }>`select 1 as one`.execute(database.db)
      assert.equal(rows[0]?.one, 1)
      assert.match(warnings.join('\n'), /idle Postgres connection was closed/)
    } finally {
      await database.close()
    }
  })
})
