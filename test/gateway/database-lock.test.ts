import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { EncryptionKeyMismatchError } from '../../src/security/encryption-key-check.ts'
import { GatewayInUseError } from '../../src/store/data-dir-lock.ts'
import { DatabaseLock } from '../../src/store/database-lock.ts'
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
  /** Runs `query` on a connection of its own. */
  const asAdmin = async <R extends pg.QueryResultRow>(query: string) => {
    const admin = new pg.Client({ connectionString: database.url })
    await admin.connect()
    try {
      return (await admin.query<R>(query)).rows
    } finally {
      await admin.end()
    }
  }
  // Only wagate's lock, in this test's database: other test files run beside this one.
  const WAGATE_LOCK = `locktype = 'advisory' and granted and classid = 30561 and objid = 1734440037 and objsubid = 1
    and database = (select oid from pg_database where datname = current_database())`
  /** Ends the connections of the lock's holder as a server restart would. */
  const cutLockConnections = async () =>
    (await asAdmin(`select pg_terminate_backend(pid) as ended from pg_locks where ${WAGATE_LOCK}`)).length
  const lockHolder = async () =>
    (await asAdmin<{ pid: number }>(`select pid from pg_locks where ${WAGATE_LOCK}`))[0]?.pid

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

  it('stops (onFatal) when another gateway took the database while its lock was lost', async () => {
    const fatal: Error[] = []
    const first = await createApp({
      config: config(0),
      onFatal: (error) => fatal.push(error),
      tuning: { databaseLockRetakeMs: 300 },
    })
    try {
      assert.equal(await cutLockConnections(), 1)
      // The second one starts in the window before the first asks again.
      const second = await createApp({ config: config(1) })
      try {
        await eventually(async () => fatal.length === 1, 'the first told to stop', 5_000)
        assert.ok(fatal[0] instanceof GatewayInUseError)
        assert.match(fatal[0].message, /another wagate took the database .* while this one's lock was lost/)
        // It gave up: it does not ask again (and so never holds the lock beside the second one).
        await new Promise((resolve) => setTimeout(resolve, 1_000))
        assert.equal(fatal.length, 1)
      } finally {
        await second.close()
      }
    } finally {
      await first.close()
    }
  })

  it("keeps its lock's connection through the server's idle_session_timeout", async () => {
    await asAdmin(`alter database "${database.name}" set idle_session_timeout = '300ms'`)
    try {
      const first = await createApp({ config: config(0) })
      try {
        const holder = await lockHolder()
        assert.ok(holder)
        await new Promise((resolve) => setTimeout(resolve, 1_500))
        assert.equal(await lockHolder(), holder, 'the same connection holds the lock')
      } finally {
        await first.close()
      }
    } finally {
      await asAdmin(`alter database "${database.name}" reset idle_session_timeout`)
    }
  })

  it('takes its lock back from its own old connection when only its end of it was cut', async () => {
    // A TCP proxy in front of Postgres, whose client side can be cut alone, as a network blip
    // or a NAT forgetting the connection would: the server's end, and the lock, live on.
    const server = new URL(database.url)
    const pairs: { client: net.Socket; upstream: net.Socket }[] = []
    const proxy = net.createServer((client) => {
      const upstream = net.connect(Number(server.port || 5432), server.hostname)
      client.pipe(upstream)
      upstream.pipe(client)
      client.on('error', () => {})
      upstream.on('error', () => {})
      pairs.push({ client, upstream })
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    const viaProxy = new URL(database.url)
    viaProxy.host = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`
    const takenOver: Error[] = []
    const lock = await DatabaseLock.acquire(viaProxy.toString(), {
      retakeEveryMs: 200,
      onTakenOver: (error) => takenOver.push(error),
    })
    try {
      const before = await lockHolder()
      const first = pairs[0]
      assert.ok(first && before)
      first.client.unpipe(first.upstream)
      first.upstream.unpipe(first.client)
      first.client.resetAndDestroy()
      await eventually(
        async () => {
          const now = await lockHolder()
          return now !== undefined && now !== before
        },
        'the lock held by a new connection',
        10_000,
      )
      assert.deepEqual(takenOver, [], 'not taken for another gateway')
    } finally {
      await lock.release()
      for (const { client, upstream } of pairs) {
        client.destroy()
        upstream.destroy()
      }
      await new Promise((resolve) => proxy.close(resolve))
    }
  })
})
