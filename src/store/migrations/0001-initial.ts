import type { Kysely } from 'kysely'

/*
 * The first schema, written once for both dialects: only column types both understand
 * (text, integer, bigint), JSON as text, booleans as 0/1. Columns in composite primary
 * keys are declared NOT NULL because SQLite would otherwise accept NULLs in them.
 * Migrations take Kysely<unknown>: they must not depend on today's table types.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('organizations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('prefix', 'text', (c) => c.notNull().unique())
    .addColumn('hash', 'text', (c) => c.notNull().unique())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('session_ids', 'text')
    .addColumn('expires_at', 'bigint')
    .addColumn('last_used_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .execute()
  await db.schema.createIndex('api_keys_organization_idx').on('api_keys').column('organization_id').execute()

  await db.schema
    .createTable('sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull().references('organizations.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('desired_state', 'text', (c) => c.notNull())
    .addColumn('sandbox', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('config', 'text', (c) => c.notNull())
    .addColumn('status_history', 'text', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addColumn('phone', 'text')
    .addColumn('push_name', 'text')
    .addColumn('jid', 'text')
    .addColumn('lid', 'text')
    .addColumn('platform', 'text')
    .addColumn('device_id', 'integer')
    .addColumn('connected_at', 'bigint')
    .addColumn('last_active_at', 'bigint')
    .addColumn('reconnect_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('sessions_organization_name_unique', ['organization_id', 'name'])
    .execute()
  await db.schema
    .createIndex('sessions_organization_created_idx')
    .on('sessions')
    .columns(['organization_id', 'created_at'])
    .execute()
  // Restore after a restart scans for these across every organization.
  await db.schema.createIndex('sessions_desired_state_idx').on('sessions').column('desired_state').execute()

  await db.schema
    .createTable('auth_creds')
    .addColumn('session_id', 'text', (c) => c.primaryKey().references('sessions.id').onDelete('cascade'))
    .addColumn('creds', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('auth_keys')
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('auth_keys_pk', ['session_id', 'type', 'key_id'])
    .execute()

  await db.schema
    .createTable('events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('session_id', 'text')
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('events_organization_created_idx')
    .on('events')
    .columns(['organization_id', 'created_at'])
    .execute()
  await db.schema
    .createIndex('events_session_created_idx')
    .on('events')
    .columns(['session_id', 'created_at'])
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['events', 'auth_keys', 'auth_creds', 'sessions', 'api_keys', 'organizations']) {
    await db.schema.dropTable(table).execute()
  }
}
