import assert from 'node:assert/strict'
import { existsSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { sql } from 'kysely'
import { type Database, openDatabase } from '../../src/store/db.ts'
import { WAL_AUTOCHECKPOINT_PAGES } from '../../src/store/node-sqlite-dialect.ts'
import { WalCheckpointer } from '../../src/store/wal-checkpointer.ts'
import { eventually } from '../support/wait.ts'

/** About 2 MiB: well under the commits' own checkpoint mark, so only the thread copies it back. */
const ROWS = 500
const ROW_BYTES = 4_000

describe('the background WAL checkpointer', () => {
  let dataDir: string
  let database: Database | undefined
  const file = () => join(dataDir, 'wagate.db')
  const size = (path: string) => (existsSync(path) ? statSync(path).size : 0)

  beforeEach(async () => {
    dataDir = await mkdtemp(join(os.tmpdir(), 'wagate-wal-'))
  })
  afterEach(async () => {
    await database?.close()
    database = undefined
    await rm(dataDir, { recursive: true, force: true })
  })

  const write = async (db: Database) => {
    await sql`create table blobs (id integer primary key, data text not null)`.execute(db.db)
    for (let i = 0; i < ROWS; i++) {
      await sql`insert into blobs (data) values (${'x'.repeat(ROW_BYTES)})`.execute(db.db)
    }
  }

  it('copies committed pages into the database file without a commit doing it', async () => {
    assert.ok((ROWS * ROW_BYTES) / 4096 < WAL_AUTOCHECKPOINT_PAGES / 2)
    database = await openDatabase({ dataDir, backgroundCheckpoints: true })
    await write(database)
    await eventually(() => size(file()) >= ROWS * ROW_BYTES, 'the pages in the database file', 5_000)
    const [row] = (await sql<{ count: number }>`select count(*) as count from blobs`.execute(database.db))
      .rows
    assert.equal(Number(row?.count), ROWS)
  })

  it('leaves the pages in the log when it is off (the control)', async () => {
    database = await openDatabase({ dataDir })
    await sql`pragma wal_autocheckpoint = ${sql.raw(String(WAL_AUTOCHECKPOINT_PAGES))}`.execute(database.db)
    await write(database)
    await new Promise((resolve) => setTimeout(resolve, 600))
    assert.ok(size(file()) < (ROWS * ROW_BYTES) / 2, `database file is ${size(file())} bytes`)
    assert.ok(size(`${file()}-wal`) >= ROWS * ROW_BYTES)
  })

  it('stops at once when its thread has already gone', async () => {
    const checkpointer = WalCheckpointer.start({ path: join(dataDir, 'no-such-dir', 'x.db') })
    await new Promise((resolve) => setTimeout(resolve, 300))
    const stopped = await Promise.race([
      checkpointer.stop().then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), 2_000)),
    ])
    assert.equal(stopped, true)
  })

  it('stops with the database, which then folds the log in and removes it', async () => {
    database = await openDatabase({ dataDir, backgroundCheckpoints: true })
    await write(database)
    await database.close()
    database = undefined
    assert.equal(existsSync(`${file()}-wal`), false)
    const reopened = await openDatabase({ dataDir })
    try {
      const [row] = (await sql<{ count: number }>`select count(*) as count from blobs`.execute(reopened.db))
        .rows
      assert.equal(Number(row?.count), ROWS)
    } finally {
      await reopened.close()
    }
  })
})
