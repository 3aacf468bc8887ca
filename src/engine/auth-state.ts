import {
  type AuthenticationCreds,
  type AuthenticationState,
  BufferJSON,
  initAuthCreds,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap,
} from '@whiskeysockets/baileys'
import type { SecretBox } from '../security/secret-box.ts'

/** Where encrypted credentials and Signal keys live (the auth-state repository). */
export interface AuthStateStore {
  getCreds(sessionId: string): Promise<string | undefined>
  saveCreds(sessionId: string, ciphertext: string): Promise<void>
  getKeys(sessionId: string, type: string, ids: string[]): Promise<Map<string, string>>
  /** applies every entry in one transaction; a null value deletes */
  setKeys(sessionId: string, entries: { type: string; id: string; value: string | null }[]): Promise<void>
  clear(sessionId: string): Promise<void>
}

export interface StoredAuthState {
  state: AuthenticationState
  /** persists the whole creds object (Baileys mutates it in place) */
  saveCreds(): Promise<void>
  /**
   * Stops every later write and waits for those in flight. Baileys keeps writing keys for a
   * moment after its socket closes (prekeys, LID mappings); after a logout those writes
   * would bring deleted credentials back, so the state is sealed before they are wiped.
   */
  seal(): Promise<void>
}

/** Linked means a phone signed our device identity; `me` alone is set by an abandoned pairing-code try. */
export const isLinked = (creds: AuthenticationCreds): boolean => Boolean(creds.me && creds.account)

/**
 * Baileys' auth state kept in the database, every value encrypted with the secret box.
 * `keys.set` is one transaction, because Baileys commits a batch spanning several key
 * types at once and retries it as a whole.
 */
export async function loadAuthState(
  sessionId: string,
  store: AuthStateStore,
  box: SecretBox,
): Promise<StoredAuthState> {
  const encode = (value: unknown) => box.encrypt(JSON.stringify(value, BufferJSON.replacer))
  const decode = (ciphertext: string) => JSON.parse(box.decrypt(ciphertext), BufferJSON.reviver)
  const stored = await store.getCreds(sessionId)
  let creds: AuthenticationCreds = stored ? decode(stored) : initAuthCreds()
  if (!isLinked(creds) && creds.me) {
    // A pairing code was requested and never entered: these creds would try to log in
    // and get 401. Start over with fresh ones, and drop any keys they produced.
    creds = initAuthCreds()
    await store.clear(sessionId)
  }
  let sealed = false
  const inFlight = new Set<Promise<void>>()
  const write = (run: () => Promise<void>): Promise<void> => {
    if (sealed) return Promise.resolve()
    const pending = run().finally(() => inFlight.delete(pending))
    inFlight.add(pending)
    return pending
  }
  return {
    state: {
      creds,
      keys: {
        get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
          const found: { [id: string]: SignalDataTypeMap[T] } = {}
          const rows = await store.getKeys(sessionId, type, ids)
          for (const [id, ciphertext] of rows) {
            let value = decode(ciphertext)
            if (type === 'app-state-sync-key') value = proto.Message.AppStateSyncKeyData.fromObject(value)
            found[id] = value
          }
          return found
        },
        set: async (data: SignalDataSet) => {
          const entries: { type: string; id: string; value: string | null }[] = []
          for (const [type, byId] of Object.entries(data)) {
            for (const [id, value] of Object.entries(byId ?? {})) {
              entries.push({ type, id, value: value === null || value === undefined ? null : encode(value) })
            }
          }
          if (entries.length) await write(() => store.setKeys(sessionId, entries))
        },
      },
    },
    saveCreds: () => write(() => store.saveCreds(sessionId, encode(creds))),
    seal: async () => {
      sealed = true
      await Promise.allSettled([...inFlight])
    },
  }
}
