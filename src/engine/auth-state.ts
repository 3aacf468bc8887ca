import {
  type AuthenticationCreds,
  type AuthenticationState,
  BufferJSON,
  initAuthCreds,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap,
} from '@whiskeysockets/baileys'
import type { Transaction } from 'kysely'
import type { SecretBox } from '../security/secret-box.ts'
import type { Tables } from '../store/schema.ts'

/** One change to the Signal key store, encrypted; a null value deletes the key. */
export interface KeyChange {
  type: string
  id: string
  value: string | null
}

/** Where encrypted credentials and Signal keys live (the auth-state repository). */
export interface AuthStateStore {
  getCreds(sessionId: string): Promise<string | undefined>
  saveCreds(sessionId: string, ciphertext: string): Promise<void>
  getKeys(sessionId: string, type: string, ids: string[]): Promise<Map<string, string>>
  /** applies every entry together: in `trx` when given, else in a transaction of its own */
  setKeys(sessionId: string, entries: KeyChange[], trx?: Transaction<Tables>): Promise<void>
  clear(sessionId: string): Promise<void>
}

/** Ends a write of staged key changes: whether the transaction that carried it committed. */
export type KeyWriteSettler = (committed: boolean) => void

export interface StoredAuthState {
  state: AuthenticationState
  /** persists the whole creds object (Baileys mutates it in place) */
  saveCreds(): Promise<void>
  /**
   * Writes the key changes staged so far inside the caller's transaction — the ingest's,
   * so that a received message and the Signal session its decryption advanced commit
   * together. Call the returned function once that transaction has ended.
   */
  writeStagedKeys(trx: Transaction<Tables>): Promise<KeyWriteSettler>
  /** writes every staged key change now, in a transaction of its own */
  flush(): Promise<void>
  /**
   * Stops every later write and stores what was staged before. Baileys keeps writing keys
   * for a moment after its socket closes (prekeys, LID mappings); after a logout those
   * writes would bring deleted credentials back, so the state is sealed before they are wiped.
   */
  seal(): Promise<void>
}

/**
 * How long a key change may stay staged when no message transaction comes to carry it:
 * the changes of sends, pre-key uploads and LID mappings are written by this timer.
 */
export const KEY_WRITE_DELAY_MS = 25
/** After a failed write, the staged changes are tried again this much later. */
const KEY_WRITE_RETRY_MS = 1_000

/** Linked means a phone signed our device identity; `me` alone is set by an abandoned pairing-code try. */
export const isLinked = (creds: AuthenticationCreds): boolean => Boolean(creds.me && creds.account)

interface Staged {
  change: KeyChange
  /** what Baileys set, handed back by reads until the change is stored */
  value: unknown
  /** bumped by every change of the key: a write settles only the version it carried */
  version: number
}

/**
 * Baileys' auth state kept in the database, every value encrypted with the secret box.
 *
 * Key changes are staged, not written one transaction each: Baileys rewrites the sender's
 * Signal session after every message it decrypts, and a commit of its own per message cost
 * as much as storing the message. A staged change is written by the next transaction of
 * the session's message ingest (`writeStagedKeys`) or, when none comes, by a timer within
 * KEY_WRITE_DELAY_MS; reads see it meanwhile. Baileys acknowledges a message before the
 * gateway stores it, so a crash in that moment loses the message as it did before; what
 * staging adds is that the session record is stored with the message rather than just ahead
 * of it. A change written together is applied whole (`setKeys`), and writes of one session
 * are made one after another, so a later change never lands under an earlier one.
 */
export async function loadAuthState(
  sessionId: string,
  store: AuthStateStore,
  box: SecretBox,
  onWriteError: (error: unknown) => void = () => {},
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
  const staged = new Map<string, Staged>()
  const stagedKey = (type: string, id: string) => `${type}\u0000${id}`
  let version = 0
  let timer: NodeJS.Timeout | undefined
  /** settles when the latest write of staged changes has ended: writes go one at a time */
  let lastWrite: Promise<void> = Promise.resolve()
  const inFlight = new Set<Promise<void>>()

  const schedule = (delayMs: number) => {
    if (timer || staged.size === 0) return
    timer = setTimeout(() => {
      timer = undefined
      void flush().catch((error) => {
        onWriteError(error)
        schedule(KEY_WRITE_RETRY_MS)
      })
    }, delayMs)
    // The close path flushes; a pending timer must not keep a finished process alive.
    timer.unref()
  }

  /** Writes what is staged now (in `trx`, or a transaction of its own); the settler clears what it carried. */
  const writeStaged = async (trx?: Transaction<Tables>): Promise<KeyWriteSettler> => {
    const previous = lastWrite
    let ended!: () => void
    lastWrite = new Promise<void>((resolve) => {
      ended = resolve
    })
    await previous
    const carried = [...staged.entries()].map(([key, entry]) => ({ key, entry }))
    if (carried.length === 0) {
      ended()
      return () => {}
    }
    try {
      await store.setKeys(
        sessionId,
        carried.map(({ entry }) => entry.change),
        trx,
      )
    } catch (error) {
      ended()
      throw error
    }
    return (committed) => {
      if (committed) {
        // A change staged again meanwhile is newer than what this write carried: it stays.
        for (const { key, entry } of carried) {
          if (staged.get(key)?.version === entry.version) staged.delete(key)
        }
      } else {
        schedule(KEY_WRITE_DELAY_MS)
      }
      ended()
    }
  }

  const flush = async (): Promise<void> => {
    clearTimeout(timer)
    timer = undefined
    const settle = await writeStaged()
    settle(true)
  }

  const track = (write: Promise<void>): Promise<void> => {
    const pending = write.finally(() => inFlight.delete(pending))
    inFlight.add(pending)
    return pending
  }

  return {
    state: {
      creds,
      keys: {
        get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
          const found: { [id: string]: SignalDataTypeMap[T] } = {}
          const unstaged: string[] = []
          for (const id of ids) {
            const entry = staged.get(stagedKey(type, id))
            if (!entry) unstaged.push(id)
            else if (entry.change.value !== null) found[id] = entry.value as SignalDataTypeMap[T]
          }
          if (unstaged.length === 0) return found
          const rows = await store.getKeys(sessionId, type, unstaged)
          for (const id of unstaged) {
            // Staged while the read was under way: the staged change is the newer one.
            const entry = staged.get(stagedKey(type, id))
            const ciphertext = rows.get(id)
            if (entry) {
              if (entry.change.value !== null) found[id] = entry.value as SignalDataTypeMap[T]
            } else if (ciphertext !== undefined) {
              let value = decode(ciphertext)
              if (type === 'app-state-sync-key') value = proto.Message.AppStateSyncKeyData.fromObject(value)
              found[id] = value
            }
          }
          return found
        },
        set: async (data: SignalDataSet) => {
          if (sealed) return
          for (const [type, byId] of Object.entries(data)) {
            for (const [id, value] of Object.entries(byId ?? {})) {
              const deleted = value === null || value === undefined
              staged.set(stagedKey(type, id), {
                // Encrypted now: Baileys may change the object it handed over after this call.
                change: { type, id, value: deleted ? null : encode(value) },
                value: deleted ? null : value,
                version: ++version,
              })
            }
          }
          schedule(KEY_WRITE_DELAY_MS)
        },
      },
    },
    saveCreds: () => (sealed ? Promise.resolve() : track(store.saveCreds(sessionId, encode(creds)))),
    writeStagedKeys: (trx) => writeStaged(trx),
    flush: () => track(flush()),
    seal: async () => {
      sealed = true
      await Promise.allSettled([...inFlight, flush()])
    },
  }
}
