import type { Kysely, Transaction } from 'kysely'
import type { Executor, Tables } from './schema.ts'

/** One change to Baileys' Signal key store; a null value deletes the key. */
export interface AuthKeyEntry {
  type: string
  id: string
  value: string | null
}

/*
 * Statement sizes, kept well below SQLite's 32,766 and Postgres' 65,535 bound parameters:
 * a group's sender keys or a pre-key upload can touch thousands of ids at once.
 */
const IDS_PER_STATEMENT = 500
const ROWS_PER_UPSERT = 250

function chunks<T>(items: T[], size: number): T[][] {
  const result: T[][] = []
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size))
  return result
}

/**
 * Baileys' credentials and Signal keys per session. Values arrive encrypted; the store
 * never sees plaintext key material.
 */
export class AuthStateRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  async getCreds(sessionId: string, trx: Executor = this.db): Promise<string | undefined> {
    const row = await trx
      .selectFrom('auth_creds')
      .select('creds')
      .where('session_id', '=', sessionId)
      .executeTakeFirst()
    return row?.creds
  }

  async saveCreds(sessionId: string, ciphertext: string, trx: Executor = this.db): Promise<void> {
    // updated_at is bookkeeping for operators, not read by any rule, so the wall clock is fine here.
    const updatedAt = Date.now()
    await trx
      .insertInto('auth_creds')
      .values({ session_id: sessionId, creds: ciphertext, updated_at: updatedAt })
      .onConflict((oc) => oc.column('session_id').doUpdateSet({ creds: ciphertext, updated_at: updatedAt }))
      .execute()
  }

  /** The stored ciphertext of each requested key that exists, by key id. */
  async getKeys(
    sessionId: string,
    type: string,
    ids: string[],
    trx: Executor = this.db,
  ): Promise<Map<string, string>> {
    const found = new Map<string, string>()
    for (const part of chunks(ids, IDS_PER_STATEMENT)) {
      const rows = await trx
        .selectFrom('auth_keys')
        .select(['key_id', 'value'])
        .where('session_id', '=', sessionId)
        .where('type', '=', type)
        .where('key_id', 'in', part)
        .execute()
      for (const row of rows) found.set(row.key_id, row.value)
    }
    return found
  }

  /**
   * Applies every entry in one transaction (the caller's, when given): Baileys commits a
   * batch across key types and retries it whole, so half a batch must never persist.
   */
  async setKeys(sessionId: string, entries: AuthKeyEntry[], trx?: Transaction<Tables>): Promise<void> {
    if (entries.length === 0) return
    if (!trx) return this.db.transaction().execute((own) => this.setKeys(sessionId, entries, own))

    // The last entry for a key wins; Postgres also rejects an upsert touching a row twice.
    const latest = new Map<string, AuthKeyEntry>()
    for (const entry of entries) latest.set(JSON.stringify([entry.type, entry.id]), entry)
    const deletes = new Map<string, string[]>()
    const upserts: Tables['auth_keys'][] = []
    for (const { type, id, value } of latest.values()) {
      if (value === null) deletes.set(type, [...(deletes.get(type) ?? []), id])
      else upserts.push({ session_id: sessionId, type, key_id: id, value })
    }

    for (const [type, ids] of deletes) {
      for (const part of chunks(ids, IDS_PER_STATEMENT)) {
        await trx
          .deleteFrom('auth_keys')
          .where('session_id', '=', sessionId)
          .where('type', '=', type)
          .where('key_id', 'in', part)
          .execute()
      }
    }
    for (const part of chunks(upserts, ROWS_PER_UPSERT)) {
      await trx
        .insertInto('auth_keys')
        .values(part)
        .onConflict((oc) =>
          oc
            .columns(['session_id', 'type', 'key_id'])
            .doUpdateSet((eb) => ({ value: eb.ref('excluded.value') })),
        )
        .execute()
    }
  }

  /** Forgets the session's link: credentials and every key (logout, or an abandoned pairing). */
  async clear(sessionId: string, trx?: Transaction<Tables>): Promise<void> {
    if (!trx) return this.db.transaction().execute((own) => this.clear(sessionId, own))
    await trx.deleteFrom('auth_keys').where('session_id', '=', sessionId).execute()
    await trx.deleteFrom('auth_creds').where('session_id', '=', sessionId).execute()
  }

  async countKeys(sessionId: string, trx: Executor = this.db): Promise<number> {
    const row = await trx
      .selectFrom('auth_keys')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('session_id', '=', sessionId)
      .executeTakeFirstOrThrow()
    return Number(row.count)
  }
}
