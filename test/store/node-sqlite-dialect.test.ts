import assert from 'node:assert/strict'
import { chmodSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { Kysely, sql } from 'kysely'
import { NodeSqliteDialect, openSqliteFile } from '../../src/store/node-sqlite-dialect.ts'

interface Scratch {
  items: { id: number; label: string }
}

const dir = await mkdtemp(join(tmpdir(), 'wagate-dialect-'))
const file = openSqliteFile(join(dir, 'deep', 'scratch.db'))
const db = new Kysely<Scratch>({ dialect: new NodeSqliteDialect({ database: file }) })
await sql`create table items (id integer primary key, label text not null)`.execute(db)
after(async () => {
  await db.destroy()
  await rm(dir, { recursive: true, force: true })
})

describe('node:sqlite dialect', () => {
  it('should open the file in WAL mode with foreign keys enforced', () => {
    assert.equal(file.prepare('pragma journal_mode').get()?.['journal_mode'], 'wal')
    assert.equal(file.prepare('pragma foreign_keys').get()?.['foreign_keys'], 1)
  })

  it('should keep the database file and its log readable by the owner only', () => {
    const path = join(dir, 'owner.db')
    const own = openSqliteFile(path)
    own.exec("create table t (x text); insert into t values ('x')")
    for (const name of ['owner.db', 'owner.db-wal', 'owner.db-shm']) {
      assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600, name)
    }
    own.close()
    // A file left readable by an earlier version is tightened when opened again.
    chmodSync(path, 0o644)
    openSqliteFile(path).close()
    assert.equal(statSync(path).mode & 0o777, 0o600)
  })

  it('should report affected rows and insert ids for writes, and rows for returning', async () => {
    const inserted = await db.insertInto('items').values({ id: 7, label: 'a' }).executeTakeFirstOrThrow()
    assert.equal(inserted.insertId, 7n)
    const returned = await db.insertInto('items').values({ id: 8, label: 'b' }).returningAll().execute()
    assert.deepEqual(returned, [{ id: 8, label: 'b' }])
    const updated = await db.updateTable('items').set({ label: 'c' }).executeTakeFirstOrThrow()
    assert.equal(updated.numUpdatedRows, 2n)
  })

  it('should stream rows one at a time', async () => {
    const labels: string[] = []
    for await (const row of db.selectFrom('items').select('label').orderBy('id').stream())
      labels.push(row.label)
    assert.deepEqual(labels, ['c', 'c'])
  })

  it('should keep other queries out of a transaction until it commits', async () => {
    const order: string[] = []
    await Promise.all([
      db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values({ id: 20, label: 'tx' }).execute()
        await new Promise((resolve) => setTimeout(resolve, 20))
        order.push('transaction')
      }),
      db
        .selectFrom('items')
        .selectAll()
        .execute()
        .then(() => order.push('query')),
    ])
    assert.deepEqual(order, ['transaction', 'query'])
  })

  it('should leave nothing behind when a transaction rolls back', async () => {
    await assert.rejects(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values({ id: 30, label: 'gone' }).execute()
        throw new Error('abort')
      }),
    )
    assert.equal(await db.selectFrom('items').selectAll().where('id', '=', 30).executeTakeFirst(), undefined)
  })

  it('should keep working after more distinct statements than its cache holds', async () => {
    for (let i = 0; i < 300; i++) await sql`select ${sql.lit(i)} as n`.execute(db)
    assert.equal((await db.selectFrom('items').selectAll().execute()).length, 3)
  })
})
