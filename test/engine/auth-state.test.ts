import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import type { Transaction } from 'kysely'
import { type AuthStateStore, type KeyChange, loadAuthState } from '../../src/engine/auth-state.ts'
import { SecretBox } from '../../src/security/secret-box.ts'
import type { Tables } from '../../src/store/schema.ts'
import { eventually } from '../support/wait.ts'

/** A key store in memory that records each write and can hold writes or fail the next one. */
function memoryStore() {
  const keys = new Map<string, string>()
  const creds: string[] = []
  const writes: { entries: KeyChange[]; trx: unknown }[] = []
  const held: (() => void)[] = []
  const control = { hold: false, failNext: false }
  const store: AuthStateStore = {
    getCreds: async () => undefined,
    saveCreds: async (_session, ciphertext) => {
      creds.push(ciphertext)
    },
    getKeys: async (_session, type, ids) => {
      const found = new Map<string, string>()
      for (const id of ids) {
        const value = keys.get(`${type}:${id}`)
        if (value !== undefined) found.set(id, value)
      }
      return found
    },
    setKeys: async (_session, entries, trx) => {
      if (control.hold) await new Promise<void>((resolve) => held.push(resolve))
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
    control,
    release: () => {
      for (const resolve of held.splice(0)) resolve()
    },
  }
}

const box = () => new SecretBox(randomBytes(32))
const turn = () => new Promise((resolve) => setImmediate(resolve))
/** A stand-in for the caller's transaction: the store only passes it on. */
const trx = { name: 'the ingest transaction' } as unknown as Transaction<Tables>

describe('auth state', () => {
  it('reads a key change at once, and stores it encrypted within moments', async () => {
    const { store, keys } = memoryStore()
    const auth = await loadAuthState('ses_1', store, box())
    await auth.state.keys.set({ 'lid-mapping': { a: '15550001111' } })
    assert.deepEqual(await auth.state.keys.get('lid-mapping', ['a', 'b']), { a: '15550001111' })
    await eventually(() => keys.has('lid-mapping:a'), 'the staged change stored')
    assert.doesNotMatch(keys.get('lid-mapping:a') ?? '', /15550001111/, 'stored encrypted')
    const reloaded = await loadAuthState('ses_1', store, new SecretBox(randomBytes(32)))
    await assert.rejects(
      async () => reloaded.state.keys.get('lid-mapping', ['a']),
      'another key cannot read it',
    )
  })

  it('writes what is staged inside the caller’s transaction, once', async () => {
    const { store, writes } = memoryStore()
    const auth = await loadAuthState('ses_2', store, box())
    await auth.state.keys.set({ session: { 'x.0': new Uint8Array([1]) }, 'pre-key': { '7': null } })
    const settle = await auth.writeStagedKeys(trx)
    settle(true)
    assert.equal(writes.length, 1)
    assert.equal(writes[0]?.trx, trx)
    assert.deepEqual(
      writes[0]?.entries.map((entry) => [entry.type, entry.id, entry.value === null]),
      [
        ['session', 'x.0', false],
        ['pre-key', '7', true],
      ],
    )
    await new Promise((resolve) => setTimeout(resolve, 60))
    assert.equal(writes.length, 1, 'nothing left for the timer to write')
    const settleNothing = await auth.writeStagedKeys(trx)
    settleNothing(true)
    assert.equal(writes.length, 1, 'an empty stage writes nothing')
  })

  it('writes a change again when the transaction that carried it rolled back', async () => {
    const { store, keys, writes } = memoryStore()
    const auth = await loadAuthState('ses_3', store, box())
    await auth.state.keys.set({ 'lid-mapping': { a: 'one' } })
    const settle = await auth.writeStagedKeys(trx)
    keys.clear() // what the rollback undid
    settle(false)
    assert.deepEqual(await auth.state.keys.get('lid-mapping', ['a']), { a: 'one' }, 'still readable')
    await eventually(() => keys.has('lid-mapping:a'), 'written again')
    assert.equal(writes.length, 2)
  })

  it('keeps a change made while an older one of the same key was being written', async () => {
    const { store, control, release } = memoryStore()
    const secretBox = box()
    const auth = await loadAuthState('ses_4', store, secretBox)
    await auth.state.keys.set({ 'lid-mapping': { a: 'old' } })
    control.hold = true
    const writing = auth.writeStagedKeys(trx)
    await turn()
    await auth.state.keys.set({ 'lid-mapping': { a: 'new' } })
    control.hold = false
    release()
    ;(await writing)(true)
    assert.deepEqual(await auth.state.keys.get('lid-mapping', ['a']), { a: 'new' })
    await auth.flush()
    const reread = await loadAuthState('ses_4', store, secretBox)
    assert.deepEqual(
      await reread.state.keys.get('lid-mapping', ['a']),
      { a: 'new' },
      'the newer change stored',
    )
  })

  it('retries a write that failed, and reports the failure', async () => {
    const { store, keys, control } = memoryStore()
    const failures: unknown[] = []
    const auth = await loadAuthState('ses_5', store, box(), (error) => failures.push(error))
    control.failNext = true
    await auth.state.keys.set({ 'lid-mapping': { a: 'kept' } })
    await eventually(() => failures.length === 1, 'the failure reported')
    assert.deepEqual(await auth.state.keys.get('lid-mapping', ['a']), { a: 'kept' }, 'still readable')
    await eventually(() => keys.has('lid-mapping:a'), 'written on the retry', 5_000)
  })

  it('once sealed, stores what was staged before and drops every later write', async () => {
    const { store, keys, creds, control, release } = memoryStore()
    const auth = await loadAuthState('ses_6', store, box())
    await auth.state.keys.set({ 'lid-mapping': { a: 'before' } })
    control.hold = true
    let sealed = false
    const sealing = auth.seal().then(() => {
      sealed = true
    })
    await turn()
    assert.equal(sealed, false, 'seal waits for the write under way')
    control.hold = false
    release()
    await sealing
    assert.equal(keys.size, 1)

    // What Baileys writes after the logout must not bring credentials back.
    await auth.state.keys.set({ 'lid-mapping': { b: 'after' } })
    await auth.saveCreds()
    await auth.flush()
    assert.equal(keys.has('lid-mapping:b'), false)
    assert.equal(creds.length, 0)
  })
})
