import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { EncryptionKeyMismatchError } from '../../src/security/encryption-key-check.ts'
import { GatewayInUseError } from '../../src/store/data-dir-lock.ts'
import { freshPostgresDatabase, type TestPostgresDatabase } from '../support/postgres.ts'
import { eventually } from '../support/wait.ts'

const postgres = await freshPostgresDatabase('database_lock')

describe('one gateway per Postgres database', { skip: !postgres }, () => {
  const database = postgres as TestPostgresDatabase
  const dataDirs: string[] = []
  before(async () => {
    for (let i = 0; i < 2; i++) dataDirs.push(await mkdtemp(join(tmpdir(), 'wagate-dblock-')))
  })
  after(async () => {
    for (const dir of dataDirs) await rm(dir, { recursive: true, force: true })
    await database.drop()
  })
  /** The key both gateways must share: the database remembers the one it was written with. */
  const ENCRYPTION_KEY = randomBytes(32).toString('hex')
  /** A gateway with a data directory of its own, on the shared database. */
  const config = (i: number) =>
    loadConfig({
      DATA_DIR: dataDirs[i] as string,
      DATABASE_URL: database.url,
      ENCRYPTION_KEY,
      PORT: '0',
      LOG_LEVEL: 'silent',
    })
  /** Ends the connections of the lock's holder as a server restart would. */
  const cutLockConnections = async () => {
    const admin = new pg.Client({ connectionString: database.url })
    await admin.connect()
    try {
      // Only wagate's lock, in this test's database: other test files run beside this one.
      const { rows } = await admin.query(
        `select pg_terminate_backend(pid) as ended from pg_locks
         where locktype = 'advisory' and granted and classid = 30561 and objid = 1734440037 and objsubid = 1
           and database = (select oid from pg_database where datname = current_database())`,
      )
      return rows.length
    } finally {
      await admin.end()
    }
  }

  it('refuses to start a second gateway on a database in use, in one line, and starts it once the first is gone', async () => {
    const first = await createApp({ config: config(0) })
    try {
      const refusal = await createApp({ config: config(1) }).then(
        () => assert.fail('a second gateway started'),
        (error: unknown) => error,
      )
      assert.ok(refusal instanceof GatewayInUseError)
      assert.match(refusal.message, /another wagate is using the database .*one gateway per database/)
      assert.doesNotMatch(refusal.message, /wagate:wagate@/, 'the password is not repeated')
      // Nor does a gateway with another encryption key start once the database is free (below).
    } finally {
      await first.close()
    }
    const second = await createApp({ config: config(1) })
    await second.close()
    const otherKey = loadConfig({
      DATA_DIR: dataDirs[1] as string,
      DATABASE_URL: database.url,
      ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      PORT: '0',
      LOG_LEVEL: 'silent',
    })
    await assert.rejects(createApp({ config: otherKey }), EncryptionKeyMismatchError)
  })

  it('leaves no lock behind when it closes while the lock is being taken again', async () => {
    const first = await createApp({ config: config(0) })
    assert.equal(await cutLockConnections(), 1)
    await first.close()
    const second = await createApp({ config: config(1) })
    await second.close()
  })

  it('takes its lock again when the connection holding it is lost, so the database stays its own', async () => {
    const first = await createApp({ config: config(0) })
    try {
      assert.equal(await cutLockConnections(), 1)
      await eventually(
        async () => {
          const attempt = await createApp({ config: config(1) }).then(
            async (started) => {
              await started.close()
              return 'started'
            },
            (error: unknown) => {
              assert.ok(error instanceof GatewayInUseError, String(error))
              return 'refused'
            },
          )
          // Until it is retaken (within 5 s) a second gateway could start; after, it cannot.
          return attempt === 'refused'
        },
        'the lock taken again',
        15_000,
        1_000,
      )
    } finally {
      await first.close()
    }
  })
})
