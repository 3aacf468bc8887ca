import { join } from 'node:path'
import { Kysely, type Migration, type MigrationResultSet, Migrator, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { Logger } from 'pino'
import { isPostgresUrl, PG_INT8_OID } from './dialect-sql.ts'
import * as initial from './migrations/0001-initial.ts'
import * as messages from './migrations/0003-messages.ts'
import * as webhooks from './migrations/0004-webhooks.ts'
import * as webhookWorkerIndexes from './migrations/0005-webhook-worker-indexes.ts'
import * as dropEndpointPendingIndex from './migrations/0006-drop-endpoint-pending-index.ts'
import * as sessionWebhookDeliveriesIndex from './migrations/0007-session-webhook-deliveries-index.ts'
import * as instanceSettings from './migrations/0008-instance-settings.ts'
import { NodeSqliteDialect, openSqliteFile } from './node-sqlite-dialect.ts'
import type { Tables } from './schema.ts'
import { WalCheckpointer } from './wal-checkpointer.ts'

/** An open store: the query builder, which dialect it speaks, and how to close it. */
export interface Database {
  db: Kysely<Tables>
  dialect: 'sqlite' | 'postgres'
  close(): Promise<void>
}

export interface OpenDatabaseOptions {
  /** a `postgres://` URL selects Postgres; anything else (or nothing) the embedded SQLite file */
  databaseUrl?: string
  /** where the SQLite file lives: `${dataDir}/wagate.db` */
  dataDir: string
  /**
   * SQLite: copy the write-ahead log back from a thread of its own (wal-checkpointer.ts)
   * rather than in the commits. For the gateway's connection; a second connection to the
   * same file (a tool, a test's look at the rows) leaves it off.
   */
  backgroundCheckpoints?: boolean
  logger?: Logger
}

/**
 * Every migration, in order. Listed in code rather than read from a folder so the set is
 * fixed at build time and works the same from any working directory. Never edit an entry
 * that has shipped: add the next one.
 */
const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': initial,
  '0003-messages': messages,
  '0004-webhooks': webhooks,
  '0005-webhook-worker-indexes': webhookWorkerIndexes,
  '0006-drop-endpoint-pending-index': dropEndpointPendingIndex,
  '0007-session-webhook-deliveries-index': sessionWebhookDeliveriesIndex,
  '0008-instance-settings': instanceSettings,
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  if (isPostgresUrl(options.databaseUrl)) {
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      // Timestamps are bigint columns; as epoch milliseconds they fit a JS number exactly.
      // Set per pool rather than on pg's global type registry.
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === PG_INT8_OID
            ? Number
            : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    })
    // An idle connection the server ends (a restart, an administrator, a network cut) is
    // reported here; the pool drops it and opens another when needed. Without a listener
    // the error would be an uncaught exception, and end the process.
    pool.on('error', (error) =>
      options.logger?.warn({ err: error }, 'an idle Postgres connection was closed; the pool replaces it'),
    )
    const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) })
    return { db, dialect: 'postgres', close: () => db.destroy() }
  }
  const path = join(options.dataDir, 'wagate.db')
  const file = openSqliteFile(path, { backgroundCheckpoints: options.backgroundCheckpoints })
  const db = new Kysely<Tables>({ dialect: new NodeSqliteDialect({ database: file }) })
  const checkpointer = options.backgroundCheckpoints
    ? WalCheckpointer.start({ path, logger: options.logger })
    : undefined
  return {
    db,
    dialect: 'sqlite',
    close: async () => {
      // First, so the gateway's connection is the last one and its close folds the log in.
      await checkpointer?.stop()
      await db.destroy()
    },
  }
}

/** Applies every migration not yet applied; safe to run on each start and from several nodes. */
export async function migrateToLatest(database: Database): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db: database.db,
    provider: { getMigrations: async () => MIGRATIONS },
  })
  const result = await migrator.migrateToLatest()
  if (result.error) throw result.error
  return result
}
