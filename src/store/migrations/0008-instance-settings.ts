import type { Kysely } from 'kysely'

/*
 * Facts about the installation itself, a row each: what every gateway on this database must
 * agree on. The first is a value sealed with the encryption key, so a gateway started with
 * another key notices before it writes or misreads anything (see encryption-key-check.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('instance_settings')
    .addColumn('name', 'text', (column) => column.primaryKey())
    .addColumn('value', 'text', (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('instance_settings').execute()
}
