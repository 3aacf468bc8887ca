import type { Kysely } from 'kysely'
import type { Executor, Tables } from './schema.ts'

/** The first response to an `Idempotency-Key`, replayed to retries of the same request. */
export interface IdempotencyRecord {
  organizationId: string
  key: string
  /** hash of the request, so a key reused for a different request is caught */
  requestHash: string
  response: unknown
  createdAt: number
}

export type StoredResponse = Pick<IdempotencyRecord, 'requestHash' | 'response' | 'createdAt'>

/** Idempotency keys per organization. */
export class IdempotencyRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  async get(
    organizationId: string,
    key: string,
    trx: Executor = this.db,
  ): Promise<StoredResponse | undefined> {
    const row = await trx
      .selectFrom('idempotency_keys')
      .select(['request_hash', 'response', 'created_at'])
      .where('organization_id', '=', organizationId)
      .where('key', '=', key)
      .executeTakeFirst()
    return (
      row && { requestHash: row.request_hash, response: JSON.parse(row.response), createdAt: row.created_at }
    )
  }

  /** First writer wins: false, and nothing written, when the key is already taken. */
  async insert(record: IdempotencyRecord, trx: Executor = this.db): Promise<boolean> {
    const rows = await trx
      .insertInto('idempotency_keys')
      .values({
        organization_id: record.organizationId,
        key: record.key,
        request_hash: record.requestHash,
        response: JSON.stringify(record.response),
        created_at: record.createdAt,
      })
      .onConflict((oc) => oc.columns(['organization_id', 'key']).doNothing())
      .returning('key')
      .execute()
    return rows.length === 1
  }

  /** Forgets keys created before `at`; returns how many. */
  async deleteOlderThan(at: number, trx: Executor = this.db): Promise<number> {
    const result = await trx.deleteFrom('idempotency_keys').where('created_at', '<', at).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
