import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { sql, type Transaction } from 'kysely'
import { type AuthStateStore, loadAuthState, StagedKeyStore } from '../../src/engine/auth-state.ts'
import { SecretBox } from '../../src/security/secret-box.ts'
import { type AuthKeyEntry, AuthStateRepository } from '../../src/store/auth-state.repository.ts'
import { migrateToLatest, openDatabase } from '../../src/store/db.ts'
import type { Tables } from '../../src/store/schema.ts'
import { eventually } from '../support/wait.ts'

/** A key store in memory that records each write and can hold reads and writes, or fail the next write. */
function memoryStore() {
  const keys = new Map<string, string>()
  const creds: string[] = []
  const writes: { entries: AuthKeyEntry[]; trx: unknown }[] = []
  const reads: string[][] = []
  const heldWrites: (() => void)[] = []
  const heldReads: (() => void)[] = []
  const control = { holdWrites: false, holdReads: false, failNext: false }
  const store: AuthStateStore = {
    getCreds: async () => undefined,
    saveCreds: async (_session, ciphertext) => {
      creds.push(ciphertext)
    },
    getKeys: async (_session, type, ids) => {
      reads.push(ids)
      const found = new Map<string, string>()
      for (const id of ids) {
        const value = keys.get(`${type}:${id}`)
        if (value !== undefined) found.set(id, value)
      }
      if (control.holdReads) await new Promise<void>((resolve) => heldReads.push(resolve))
      return found
    },
    setKeys: async (_session, entries, trx) => {
      if (control.holdWrites) await new Promise<void>((resolve) => heldWrites.push(resolve))
      if (control.failNext) {
        control.failNext = false
        throw new Error('disk full')
      }
      writes.push({ entries, trx })
      for (const entry of entries) {
        if (entry.value === null) keys.delete(`${entry.type}:${entry.id}`)
        else keys.set(`${entry.type}:${entry.id}`, entry.value)
      }
    },
    clear: async () => {
      keys.clear()
      creds.length = 0
    },
  }
  return {
    store,
    keys,
    creds,
    writes,
    reads,
    control,
    heldWrites,
    releaseWrites: () => {
      control.holdWrites = false
      for (const resolve of heldWrites.splice(0)) resolve()
    },
    releaseReads: () => {
      control.holdReads = false
      for (const resolve of heldReads.splice(0)) resolve()
    },
  }
}

const turn = () => new Promise((resolve) => setImmediate(resolve))
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** A stand-in for the caller's transaction: the store only passes it on. */
const trx = { name: 'the ingest transaction' } as unknown as Transaction<Tables>

function stagedKeys(
  store: AuthStateStore,
  box = new SecretBox(randomBytes(32)),
  onWriteError?: (e: unknown) => void,
) {
  return new StagedKeyStore({ sessionId: 'ses_1', store, box, ...(onWriteError ? { onWriteError } : {}) })
}

/**
 * Key `a` being written (held by the store), and key `b` staged after it: returns the
 * write under way.
 */
async function writeUnderWay(
  staged: StagedKeyStore,
  control: { holdWrites: boolean },
): Promise<{ writing: Promise<void> }> {
  await staged.keys.set({ session: { a: new Uint8Array([1]) } })
  control.holdWrites = true
  const writing = staged.flush()
  await turn()
  await staged.keys.set({ session: { b: new Uint8Array([2]) } })
  // Wrapped: an async function would wait for the write itself.
  return { writing }
}

describe('staged Signal keys', () => {
  it('reads a change at once, and stores it encrypted within moments', async () => {
    const { store, keys } = memoryStore()
    const box = new SecretBox(randomBytes(32))
    const staged = stagedKeys(store, box)
    await staged.keys.set({ session: { a: new Uint8Array([7]) } })
    assert.deepEqual(await staged.keys.get('session', ['a', 'b']), { a: new Uint8Array([7]) })
    await eventually(() => keys.has('session:a'), 'the staged change stored')
    assert.doesNotMatch(keys.get('session:a') ?? '', /"data"/, 'stored encrypted')
    const reread = await stagedKeys(store, box).keys.get('session', ['a'])
    assert.deepEqual(Buffer.from(reread.a as Uint8Array), Buffer.from([7]))
    await assert.rejects(
      async () => stagedKeys(store).keys.get('session', ['a']),
      'another key cannot read it',
    )
  })

  it('writes what is staged inside the caller’s transaction, and nothing is left for the timer', async () => {
    const { store, writes } = memoryStore()
    const staged = stagedKeys(store)
    await staged.keys.set({ session: { 'x.0': new Uint8Array([1]), 'y.0': null } })
    const settle = await staged.writeWithin(trx)
    settle(true)
    assert.equal(writes.length, 1)
    assert.equal(writes[0]?.trx, trx)
    assert.deepEqual(
      writes[0]?.entries.map((entry) => [entry.type, entry.id, entry.value === null]),
      [
        ['session', 'x.0', false],
        ['session', 'y.0', true],
      ],
    )
    await pause(60)
    assert.equal(writes.length, 1, 'the timer found nothing to write')
    ;(await staged.writeWithin(trx))(true)
    assert.equal(writes.length, 1, 'an empty stage writes nothing')
  })

  it('writes a change again when the transaction that carried it rolled back', async () => {
    const { store, keys, writes } = memoryStore()
    const staged = stagedKeys(store)
    await staged.keys.set({ session: { a: new Uint8Array([1]) } })
    const settle = await staged.writeWithin(trx)
    keys.clear() // what the rollback undid
    settle(false)
    assert.ok((await staged.keys.get('session', ['a'])).a, 'still readable')
    await eventually(() => keys.has('session:a'), 'written again')
    assert.equal(writes.length, 2)
  })

  it('keeps a change made while an older one of the same key was being written', async () => {
    const { store, control, releaseWrites } = memoryStore()
    const box = new SecretBox(randomBytes(32))
    const staged = stagedKeys(store, box)
    await staged.keys.set({ session: { a: new Uint8Array([1]) } })
    control.holdWrites = true
    const writing = staged.flush()
    await turn()
    await staged.keys.set({ session: { a: new Uint8Array([2]) } })
    releaseWrites()
    await writing
    assert.deepEqual(await staged.keys.get('session', ['a']), { a: new Uint8Array([2]) })
    await staged.flush()
    const reread = await stagedKeys(store, box).keys.get('session', ['a'])
    assert.deepEqual(Buffer.from(reread.a as Uint8Array), Buffer.from([2]), 'the newer change stored')
  })

  it('answers a read with a change staged while the database was being read', async () => {
    const { store, control, releaseReads } = memoryStore()
    const staged = stagedKeys(store)
    await staged.keys.set({ session: { a: new Uint8Array([1]) } })
    await staged.flush()
    control.holdReads = true
    const reading = staged.keys.get('session', ['a'])
    await turn()
    await staged.keys.set({ session: { a: new Uint8Array([2]) } })
    releaseReads()
    assert.deepEqual(await reading, { a: new Uint8Array([2]) })
  })

  it('reads a missing key once, until it is set', async () => {
    const { store, reads } = memoryStore()
    const staged = stagedKeys(store)
    assert.deepEqual(await staged.keys.get('device-list', ['15550001111']), {})
    assert.deepEqual(await staged.keys.get('device-list', ['15550001111']), {})
    assert.equal(reads.length, 1, 'the second read answered from memory')
    await staged.keys.set({ 'device-list': { '15550001111': ['0', '1'] } })
    assert.deepEqual(await staged.keys.get('device-list', ['15550001111']), { '15550001111': ['0', '1'] })
  })

  it('makes one write at a time', async () => {
    const { store, control, heldWrites, releaseWrites } = memoryStore()
    const staged = stagedKeys(store)
    const { writing: first } = await writeUnderWay(staged, control)
    const second = staged.flush()
    await pause(10)
    assert.equal(heldWrites.length, 1, 'the second write waits for the first to end')
    releaseWrites()
    await Promise.all([first, second])
  })

  // A timeout: the failure this guards against is a hang.
  it('inside a transaction, never waits for a write under way: leaves the changes to the timer', {
    timeout: 5_000,
  }, async () => {
    const { store, keys, writes, control, releaseWrites } = memoryStore()
    const staged = stagedKeys(store)
    const { writing: flushing } = await writeUnderWay(staged, control)
    ;(await staged.writeWithin(trx))(true)
    assert.equal(writes.length, 0, 'nothing written in the caller’s transaction')
    releaseWrites()
    await flushing
    await eventually(() => keys.has('session:b'), 'the later change written by the timer')
    assert.ok(writes.every((write) => write.trx === undefined))
  })

  it('stores a change other than a session’s before set returns', async () => {
    const { store, keys } = memoryStore()
    const staged = stagedKeys(store)
    await staged.keys.set({
      'pre-key': { '7': { public: new Uint8Array([1]), private: new Uint8Array([2]) } },
    })
    assert.ok(keys.has('pre-key:7'), 'a pre-key Baileys is about to upload is stored already')
  })

  it('retries a write that failed, and reports the failure', async () => {
    const { store, keys, control } = memoryStore()
    const failures: unknown[] = []
    const staged = stagedKeys(store, undefined, (error) => failures.push(error))
    control.failNext = true
    await staged.keys.set({ session: { a: new Uint8Array([1]) } })
    await eventually(() => failures.length === 1, 'the failure reported')
    assert.ok((await staged.keys.get('session', ['a'])).a, 'still readable')
    await eventually(() => keys.has('session:a'), 'written on the retry', 5_000)
  })

  it('once sealed, stores what was staged before and never writes again', async () => {
    const { store, keys, writes, control, releaseWrites } = memoryStore()
    const failures: unknown[] = []
    const staged = stagedKeys(store, undefined, (error) => failures.push(error))
    await staged.keys.set({ session: { a: new Uint8Array([1]) } })
    control.holdWrites = true
    let sealed = false
    const sealing = staged.seal().then(() => {
      sealed = true
    })
    await turn()
    assert.equal(sealed, false, 'seal waits for its write')
    releaseWrites()
    await sealing
    assert.equal(keys.size, 1)

    // What Baileys writes after the logout must not bring keys back.
    await staged.keys.set({ session: { b: new Uint8Array([2]) } })
    ;(await staged.writeWithin(trx))(true)
    await staged.flush()
    assert.equal(keys.has('session:b'), false)
    assert.equal(writes.length, 1)
  })

  it('once sealed after a failed write, drops what it could not store instead of retrying it later', async () => {
    const { store, keys, writes, control } = memoryStore()
    const failures: unknown[] = []
    const staged = stagedKeys(store, undefined, (error) => failures.push(error))
    await staged.keys.set({ session: { a: new Uint8Array([1]) } })
    control.failNext = true
    await staged.seal()
    assert.equal(failures.length, 1, 'the failure reported')
    await pause(1_100)
    assert.equal(writes.length, 0)
    assert.equal(keys.size, 0, 'nothing written into the wiped session')
  })

  it('drops credential saves once the auth state is sealed', async () => {
    const { store, creds } = memoryStore()
    const auth = await loadAuthState('ses_1', store, new SecretBox(randomBytes(32)), stagedKeys(store))
    await auth.saveCreds()
    await auth.seal()
    await auth.saveCreds()
    assert.equal(creds.length, 1)
  })

  it('on SQLite, a message transaction queued behind other work does not deadlock with the timer', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'wagate-keys-'))
    const database = await openDatabase({ dataDir })
    try {
      await migrateToLatest(database)
      // Keys without a session row: what is under test is the connection, not the schema.
      await sql`pragma foreign_keys = off`.execute(database.db)
      const staged = new StagedKeyStore({
        sessionId: 'ses_1',
        store: new AuthStateRepository(database.db),
        box: new SecretBox(randomBytes(32)),
      })
      await staged.keys.set({ session: { a: new Uint8Array([1]) } })
      // Other work holds the connection past the timer; the message transaction queues behind it.
      const other = database.db.transaction().execute(() => pause(50))
      const message = database.db.transaction().execute((trx) => staged.writeWithin(trx))
      await other
      const outcome = await Promise.race([
        message.then((settle) => settle(true)).then(() => 'done'),
        pause(3_000).then(() => 'stuck'),
      ])
      assert.equal(outcome, 'done')
      await eventually(
        async () => (await new AuthStateRepository(database.db).countKeys('ses_1')) === 1,
        'the key stored',
      )
    } finally {
      await database.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
