import type { Kysely, Selectable } from 'kysely'
import type { ApiKeyRoleColumn, ApiKeysTable, Executor, Tables } from './schema.ts'

/** An API key as services see it; the hash stays in the store except when creating. */
export interface ApiKeyRecord {
  id: string
  organizationId: string
  name: string
  /** the visible start of the key, safe to show and log */
  prefix: string
  role: ApiKeyRoleColumn
  /** null: every session of the organization */
  sessionIds: string[] | null
  expiresAt: number | null
  lastUsedAt: number | null
  createdAt: number
  revokedAt: number | null
}

const toRecord = (row: Selectable<ApiKeysTable>): ApiKeyRecord => ({
  id: row.id,
  organizationId: row.organization_id,
  name: row.name,
  prefix: row.prefix,
  role: row.role,
  sessionIds: row.session_ids === null ? null : (JSON.parse(row.session_ids) as string[]),
  expiresAt: row.expires_at,
  lastUsedAt: row.last_used_at,
  createdAt: row.created_at,
  revokedAt: row.revoked_at,
})

/** API keys, stored as a sha-256 hash plus a visible prefix. */
export class ApiKeysRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  async create(record: ApiKeyRecord & { hash: string }, trx: Executor = this.db): Promise<void> {
    await trx
      .insertInto('api_keys')
      .values({
        id: record.id,
        organization_id: record.organizationId,
        name: record.name,
        prefix: record.prefix,
        hash: record.hash,
        role: record.role,
        session_ids: record.sessionIds === null ? null : JSON.stringify(record.sessionIds),
        expires_at: record.expiresAt,
        last_used_at: record.lastUsedAt,
        created_at: record.createdAt,
        revoked_at: record.revokedAt,
      })
      .execute()
  }

  /** The key with this hash, revoked or expired ones included: the caller decides. */
  async getByHash(hash: string, trx: Executor = this.db): Promise<ApiKeyRecord | undefined> {
    const row = await trx.selectFrom('api_keys').selectAll().where('hash', '=', hash).executeTakeFirst()
    return row && toRecord(row)
  }

  async getById(
    organizationId: string,
    id: string,
    trx: Executor = this.db,
  ): Promise<ApiKeyRecord | undefined> {
    const row = await trx
      .selectFrom('api_keys')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  async listByOrganization(organizationId: string, trx: Executor = this.db): Promise<ApiKeyRecord[]> {
    const rows = await trx
      .selectFrom('api_keys')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }

  /** Marks the key revoked; false when there is no such active key in the organization. */
  async revoke(organizationId: string, id: string, at: number, trx: Executor = this.db): Promise<boolean> {
    const result = await trx
      .updateTable('api_keys')
      .set({ revoked_at: at })
      .where('organization_id', '=', organizationId)
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst()
    return result.numUpdatedRows > 0n
  }

  /** Every key ever created, revoked ones included (first start seeds a key only when this is 0). */
  async count(trx: Executor = this.db): Promise<number> {
    const row = await trx
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .executeTakeFirstOrThrow()
    return Number(row.count)
  }

  /**
   * Records use of many keys in one statement, so the auth path can batch these writes
   * instead of writing per request. Never moves a timestamp backwards.
   */
  async touchLastUsed(ids: string[], at: number, trx: Executor = this.db): Promise<void> {
    if (ids.length === 0) return
    await trx
      .updateTable('api_keys')
      .set({ last_used_at: at })
      .where('id', 'in', ids)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', at)]))
      .execute()
  }
}
