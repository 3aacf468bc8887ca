import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { type AuthStateStore, loadAuthState } from '../../src/engine/auth-state.ts'
import { SecretBox } from '../../src/security/secret-box.ts'

/** A store whose key writes wait until the test lets them through. */
function slowStore() {
  const keys = new Map<string, string>()
  const creds: string[] = []
  const held: (() => void)[] = []
  const store: AuthStateStore = {
    getCreds: async () => undefined,
    saveCreds: async (_session, ciphertext) => {
      creds.push(ciphertext)
    },
    getKeys: async () => new Map(),
    setKeys: async (_session, entries) => {
      await new Promise<void>((resolve) => held.push(resolve))
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
    release: () => {
      for (const resolve of held.splice(0)) resolve()
    },
  }
}

describe('auth state', () => {
  it('once sealed, finishes the writes in flight and drops every later one', async () => {
    const { store, keys, creds, release } = slowStore()
    const auth = await loadAuthState('ses_1', store, new SecretBox(randomBytes(32)))
    const inFlight = auth.state.keys.set({ 'lid-mapping': { a: 'before' } })

    let sealed = false
    const sealing = auth.seal().then(() => {
      sealed = true
    })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(sealed, false, 'seal waits for the write already under way')
    release()
    await Promise.all([inFlight, sealing])
    assert.equal(keys.size, 1)

    // What Baileys writes after the logout must not bring credentials back.
    await auth.state.keys.set({ 'lid-mapping': { b: 'after' } })
    await auth.saveCreds()
    assert.equal(keys.has('lid-mapping:b'), false)
    assert.equal(creds.length, 0)
  })

  it('writes normally until sealed', async () => {
    const { store, keys, creds, release } = slowStore()
    const auth = await loadAuthState('ses_2', store, new SecretBox(randomBytes(32)))
    const writing = auth.state.keys.set({ session: { 'x.0': new Uint8Array([1]) } })
    await new Promise((resolve) => setImmediate(resolve))
    release()
    await writing
    await auth.saveCreds()
    assert.equal(keys.size, 1)
    assert.equal(creds.length, 1)
  })
})
