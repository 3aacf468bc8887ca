import {
  type AuthenticationCreds,
  type AuthenticationState,
  BufferJSON,
  initAuthCreds,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap,
  type SignalKeyStore,
} from '@whiskeysockets/baileys'
import type { Transaction } from 'kysely'
import type { SecretBox } from '../security/secret-box.ts'
import type { AuthKeyEntry } from '../store/auth-state.repository.ts'
import type { Tables } from '../store/schema.ts'

/** Where encrypted credentials and Signal keys live (the auth-state repository). */
export interface AuthStateStore {
  getCreds(sessionId: string): Promise<string | undefined>
  saveCreds(sessionId: string, ciphertext: string): Promise<void>
  getKeys(sessionId: string, type: string, ids: string[]): Promise<Map<string, string>>
  /** applies every entry together: in `trx` when given, else in a transaction of its own */
  setKeys(sessionId: string, entries: AuthKeyEntry[], trx?: Transaction<Tables>): Promise<void>
  clear(sessionId: string): Promise<void>
}

/** Ends a write of staged key changes: whether the transaction that carried it committed. */
export type KeyWriteSettler = (committed: boolean) => void

/**
 * How long a staged key change may wait when no message transaction comes to carry it
 * (a send's session update, a sender key, a change made while a write was under way).
 */
const KEY_WRITE_DELAY_MS = 25
/** The most missing keys remembered per session; past it the list starts over. */
const ABSENT_KEYS_KEPT = 10_000
/** After a failed write, the staged changes are tried again this much later. */
const KEY_WRITE_RETRY_MS = 1_000

/**
 * The key types Baileys changes for every message it decrypts or encrypts; these are
 * staged. Any other change (pre-keys it is about to upload, app-state keys, LID mappings)
 * is stored before `keys.set` returns, as Baileys expects of a key store.
 */
const STAGED_TYPES = new Set(['session', 'sender-key', 'sender-key-memory'])

interface Staged {
  /** encrypted, as stored */
  change: AuthKeyEntry
  /** what Baileys set, handed back by reads until the change is stored */
  value: unknown
  /** bumped by every change of the key: a write settles only the version it carried */
  version: number
}

/**
 * One session's Signal keys, every value encrypted with the secret box, with the changes
 * made per message staged rather than written in a transaction each.
 *
 * Baileys rewrites the sender's Signal session after every message it decrypts; a commit of
 * its own per message cost as much as storing the message. A staged change is written by the
 * next transaction of the session's message ingest (`writeWithin`), so the message and the
 * session record its decryption advanced commit together, or by a timer within
 * KEY_WRITE_DELAY_MS; reads see it meanwhile. What this risks: Baileys sends the delivery
 * receipt before the gateway stores a message (as before, a crash in that moment loses the
 * message), and it used to wait for the session record before that receipt — a crash now
 * may lose the last ≤ 25 ms of session changes, those of messages that were acknowledged
 * but not stored, ignored, or buffered by Baileys while it caught up with an offline backlog.
 * A contact whose next message then fails to decrypt is asked to resend it (Baileys' retry
 * receipts), which sets up a new session.
 *
 * Writes are made one after another, so a later change never lands under an earlier one.
 * There is one of these per session for the life of the process, shared by its successive
 * connections, so a reconnect reads what the previous socket staged.
 */
export class StagedKeyStore {
  private readonly sessionId: string
  private readonly store: AuthStateStore
  private readonly box: SecretBox
  private readonly onWriteError: (error: unknown) => void
  private readonly staged = new Map<string, Staged>()
  /**
   * Keys a read found missing, not read again until set: Baileys asks for the device list
   * of every sender it has none stored for, at every message. Every change of this
   * session's keys comes through here (one process runs a session), so this stays true.
   */
  private readonly absent = new Set<string>()
  private version = 0
  private timer: NodeJS.Timeout | undefined
  /** settles when the latest write has ended: writes go one at a time */
  private lastWrite: Promise<void> = Promise.resolve()
  /** writes begun and not settled */
  private writing = 0
  private sealed = false
  /** sealed and what was staged before written (or given up): nothing is written any more */
  private closed = false
  readonly keys: SignalKeyStore

  constructor(deps: {
    sessionId: string
    store: AuthStateStore
    box: SecretBox
    onWriteError?: (error: unknown) => void
  }) {
    this.sessionId = deps.sessionId
    this.store = deps.store
    this.box = deps.box
    this.onWriteError = deps.onWriteError ?? (() => {})
    this.keys = { get: (type, ids) => this.get(type, ids), set: (data) => this.set(data) }
  }

  /**
   * Writes the changes staged so far inside the caller's transaction — the ingest's — and
   * returns the function to call once it ended. It never waits: with a write under way it
   * carries nothing and leaves the changes to the timer (waiting inside a transaction could
   * hold the database while that write waits for it).
   */
  async writeWithin(trx: Transaction<Tables>): Promise<KeyWriteSettler> {
    if (this.writing > 0) {
      this.schedule(KEY_WRITE_DELAY_MS)
      return () => {}
    }
    return this.write(trx)
  }

  /** Writes every staged change now, in a transaction of its own. */
  async flush(): Promise<void> {
    const settle = await this.write()
    settle(true)
  }

  /**
   * Stops every later change and stores what was staged before. Baileys keeps writing keys
   * for a moment after its socket closes (prekeys, LID mappings); after a logout those
   * writes would bring deleted keys back, so the store is sealed before they are wiped.
   */
  async seal(): Promise<void> {
    this.sealed = true
    try {
      await this.flush()
    } catch (error) {
      this.onWriteError(error)
    } finally {
      this.closed = true
      clearTimeout(this.timer)
      this.staged.clear()
    }
  }

  /** Drops what is staged and known, unwritten: the keys were wiped underneath (an abandoned pairing). */
  forget(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.staged.clear()
    this.absent.clear()
  }

  private async get<T extends keyof SignalDataTypeMap>(
    type: T,
    ids: string[],
  ): Promise<{ [id: string]: SignalDataTypeMap[T] }> {
    const found: { [id: string]: SignalDataTypeMap[T] } = {}
    const unread = ids.filter((id) => {
      const key = stagedKey(type, id)
      return !this.staged.has(key) && !this.absent.has(key)
    })
    const rows = unread.length > 0 ? await this.store.getKeys(this.sessionId, type, unread) : undefined
    for (const id of ids) {
      // Read after the database answered: a change staged meanwhile is the newer one.
      const key = stagedKey(type, id)
      const entry = this.staged.get(key)
      if (entry) {
        if (entry.change.value !== null) found[id] = entry.value as SignalDataTypeMap[T]
        continue
      }
      const ciphertext = rows?.get(id)
      if (ciphertext === undefined) {
        if (this.absent.size >= ABSENT_KEYS_KEPT) this.absent.clear()
        this.absent.add(key)
        continue
      }
      const value = decode(this.box, ciphertext) as { [key: string]: unknown }
      found[id] = (
        type === 'app-state-sync-key' ? proto.Message.AppStateSyncKeyData.fromObject(value) : value
      ) as SignalDataTypeMap[T]
    }
    return found
  }

  private async set(data: SignalDataSet): Promise<void> {
    if (this.sealed) return
    let urgent = false
    for (const [type, byId] of Object.entries(data)) {
      for (const [id, value] of Object.entries(byId ?? {})) {
        const deleted = value === null || value === undefined
        this.absent.delete(stagedKey(type, id))
        this.staged.set(stagedKey(type, id), {
          // Encrypted now: Baileys may change the object it handed over after this call.
          change: { type, id, value: deleted ? null : encode(this.box, value) },
          value: deleted ? null : value,
          version: ++this.version,
        })
        if (!STAGED_TYPES.has(type)) urgent = true
      }
    }
    if (urgent) await this.flush()
    else this.schedule(KEY_WRITE_DELAY_MS)
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.closed || this.staged.size === 0) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.flush().catch((error) => {
        this.onWriteError(error)
        this.schedule(KEY_WRITE_RETRY_MS)
      })
    }, delayMs)
    // Shutdown flushes; a pending timer must not keep a finished process alive.
    this.timer.unref()
  }

  /** Writes what is staged once the writes before it ended (in `trx`, or a transaction of its own). */
  private async write(trx?: Transaction<Tables>): Promise<KeyWriteSettler> {
    const previous = this.lastWrite
    let ended!: () => void
    this.lastWrite = new Promise<void>((resolve) => {
      ended = resolve
    })
    this.writing++
    const end = () => {
      this.writing--
      ended()
    }
    await previous
    const carried = [...this.staged.entries()].map(([key, entry]) => ({ key, entry }))
    if (this.closed || carried.length === 0) {
      end()
      return () => {}
    }
    // Everything staged is in this write: the timer has nothing left to do unless it fails.
    clearTimeout(this.timer)
    this.timer = undefined
    try {
      await this.store.setKeys(
        this.sessionId,
        carried.map(({ entry }) => entry.change),
        trx,
      )
    } catch (error) {
      end()
      this.schedule(KEY_WRITE_RETRY_MS)
      throw error
    }
    return (committed) => {
      if (committed) {
        // A change staged again meanwhile is newer than what this write carried: it stays.
        for (const { key, entry } of carried) {
          if (this.staged.get(key)?.version === entry.version) this.staged.delete(key)
        }
      }
      end()
      this.schedule(KEY_WRITE_DELAY_MS)
    }
  }
}

/** Credentials and keys at rest: Baileys' JSON (Buffers included), encrypted with the secret box. */
const encode = (box: SecretBox, value: unknown): string =>
  box.encrypt(JSON.stringify(value, BufferJSON.replacer))
const decode = (box: SecretBox, ciphertext: string): unknown =>
  JSON.parse(box.decrypt(ciphertext), BufferJSON.reviver)

const stagedKey = (type: string, id: string) => `${type}\u0000${id}`

export interface StoredAuthState {
  state: AuthenticationState
  /** persists the whole creds object (Baileys mutates it in place) */
  saveCreds(): Promise<void>
  /** stops later credential saves and seals the keys (see StagedKeyStore.seal) */
  seal(): Promise<void>
}

/** Linked means a phone signed our device identity; `me` alone is set by an abandoned pairing-code try. */
export const isLinked = (creds: AuthenticationCreds): boolean => Boolean(creds.me && creds.account)

/** The session's stored credentials, if it has any. */
export async function readCreds(
  sessionId: string,
  store: AuthStateStore,
  box: SecretBox,
): Promise<AuthenticationCreds | undefined> {
  const stored = await store.getCreds(sessionId)
  return stored === undefined ? undefined : (decode(box, stored) as AuthenticationCreds)
}

/** Baileys' auth state kept in the database: the credentials, and the session's keys. */
export async function loadAuthState(
  sessionId: string,
  store: AuthStateStore,
  box: SecretBox,
  keys: StagedKeyStore,
): Promise<StoredAuthState> {
  let creds = (await readCreds(sessionId, store, box)) ?? initAuthCreds()
  if (!isLinked(creds) && creds.me) {
    // A pairing code was requested and never entered: these creds would try to log in
    // and get 401. Start over with fresh ones, and drop any keys they produced.
    creds = initAuthCreds()
    keys.forget()
    await store.clear(sessionId)
  }
  let sealed = false
  const saving = new Set<Promise<void>>()
  return {
    state: { creds, keys: keys.keys },
    saveCreds: () => {
      if (sealed) return Promise.resolve()
      const save = store.saveCreds(sessionId, encode(box, creds)).finally(() => saving.delete(save))
      saving.add(save)
      return save
    },
    seal: async () => {
      sealed = true
      await Promise.allSettled([...saving, keys.seal()])
    },
  }
}
