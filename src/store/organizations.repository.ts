import type { Kysely, Selectable } from 'kysely'
import type { Executor, OrganizationsTable, Tables } from './schema.ts'

export interface OrganizationRecord {
  id: string
  name: string
  createdAt: number
}

const toRecord = (row: Selectable<OrganizationsTable>): OrganizationRecord => ({
  id: row.id,
  name: row.name,
  createdAt: row.created_at,
})

/** Tenants. Every tenant-owned row elsewhere carries one of these ids. */
export class OrganizationsRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  async create(record: OrganizationRecord, trx: Executor = this.db): Promise<void> {
    await trx
      .insertInto('organizations')
      .values({ id: record.id, name: record.name, created_at: record.createdAt })
      .execute()
  }

  async getById(id: string, trx: Executor = this.db): Promise<OrganizationRecord | undefined> {
    const row = await trx.selectFrom('organizations').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toRecord(row)
  }

  /** The oldest organization: the default one created on first start. */
  async getFirst(trx: Executor = this.db): Promise<OrganizationRecord | undefined> {
    const row = await trx
      .selectFrom('organizations')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .limit(1)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  async list(trx: Executor = this.db): Promise<OrganizationRecord[]> {
    const rows = await trx
      .selectFrom('organizations')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }
}
