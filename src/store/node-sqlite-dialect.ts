import { chmodSync, existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import {
  CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely'

/** How long a statement waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000
/** Prepared statements kept per connection; Kysely emits a small, fixed set of query shapes. */
const STATEMENT_CACHE_SIZE = 256

/**
 * Logged pages at which a commit copies the write-ahead log back itself. SQLite's default
 * is 1,000; with the background checkpointer (wal-checkpointer.ts) doing that work, this
 * commit finds nearly every page copied, and lets the log start over from the beginning.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 4_000
/** A log that has started over is cut back to this size, rather than kept at its largest. */
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

/**
 * Opens (creating it and its directory) an SQLite file tuned for a server: WAL so readers
 * never block the writer, NORMAL sync (durable at each checkpoint, safe with WAL), foreign
 * keys on (SQLite leaves them off by default, and our cascades rely on them).
 * `backgroundCheckpoints`: a WalCheckpointer copies the log back, so commits need not.
 */
export function openSqliteFile(
  path: string,
  options: { backgroundCheckpoints?: boolean } = {},
): DatabaseSync {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const database = new DatabaseSync(path)
  // Owner only, as the data directory is: messages and contacts are stored in the clear.
  // SQLite gives the -wal and -shm files it creates the database file's mode.
  if (path !== ':memory:') {
    for (const file of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600)
  }
  database.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`)
  database.exec('PRAGMA journal_mode = WAL')
  database.exec('PRAGMA synchronous = NORMAL')
  database.exec('PRAGMA foreign_keys = ON')
  if (options.backgroundCheckpoints) {
    database.exec(`PRAGMA wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`)
    database.exec(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`)
  }
  return database
}

export interface NodeSqliteDialectConfig {
  database: DatabaseSync
}

/** Kysely over Node's built-in `node:sqlite`, so the embedded store needs no native addon. */
export class NodeSqliteDialect implements Dialect {
  private readonly config: NodeSqliteDialectConfig

  constructor(config: NodeSqliteDialectConfig) {
    this.config = config
  }

  createDriver(): Driver {
    return new NodeSqliteDriver(this.config.database)
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler()
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter()
  }

  // biome-ignore lint/suspicious/noExplicitAny: Dialect's own signature takes Kysely<any>
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new SqliteIntrospector(db)
  }
}

/**
 * One connection for the whole process: `DatabaseSync` is synchronous, so a pool would add
 * nothing, and a mutex keeps a transaction's statements from interleaving with others'.
 * Consequence: inside `db.transaction().execute(trx => …)` every query must go through
 * `trx`; a query on `db` there would wait for the lock the transaction holds, forever.
 */
class NodeSqliteDriver implements Driver {
  private readonly connection: NodeSqliteConnection
  private readonly mutex = new Mutex()

  constructor(database: DatabaseSync) {
    this.connection = new NodeSqliteConnection(database)
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.mutex.lock()
    return this.connection
  }

  async releaseConnection(): Promise<void> {
    this.mutex.unlock()
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    // IMMEDIATE takes the write lock up front: a deferred transaction that reads, then
    // writes, can fail with SQLITE_BUSY when another process wrote in between.
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'))
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'))
  }

  async destroy(): Promise<void> {
    this.connection.close()
  }
}

class NodeSqliteConnection implements DatabaseConnection {
  private readonly database: DatabaseSync
  private readonly statements = new Map<string, { statement: StatementSync; returnsRows: boolean }>()

  constructor(database: DatabaseSync) {
    this.database = database
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const { statement, returnsRows } = this.prepare(query.sql)
    const parameters = query.parameters as SQLInputValue[]
    if (returnsRows) {
      return { rows: statement.all(...parameters).map(plain) as R[] }
    }
    const { changes, lastInsertRowid } = statement.run(...parameters)
    return { rows: [], numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid) }
  }

  async *streamQuery<R>(query: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    const { statement } = this.prepare(query.sql)
    for (const row of statement.iterate(...(query.parameters as SQLInputValue[]))) {
      yield { rows: [plain(row) as R] }
    }
  }

  close(): void {
    this.statements.clear()
    if (this.database.isOpen) this.database.close()
  }

  private prepare(sql: string): { statement: StatementSync; returnsRows: boolean } {
    let prepared = this.statements.get(sql)
    if (prepared) {
      // Re-insert so the Map's insertion order doubles as least-recently-used order.
      this.statements.delete(sql)
    } else {
      const statement = this.database.prepare(sql)
      // columns() rather than "is it a SELECT": `insert … returning` also yields rows.
      prepared = { statement, returnsRows: statement.columns().length > 0 }
      if (this.statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.statements.keys().next().value
        if (oldest !== undefined) this.statements.delete(oldest)
      }
    }
    this.statements.set(sql, prepared)
    return prepared
  }
}

/** node:sqlite rows have a null prototype; copy them so rows look the same as pg's on both dialects. */
const plain = (row: Record<string, unknown>): Record<string, unknown> => ({ ...row })

/** A FIFO lock: waiters get the connection in the order they asked for it. */
class Mutex {
  private locked = false
  private readonly waiters: (() => void)[] = []

  async lock(): Promise<void> {
    if (!this.locked) {
      this.locked = true
      return
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  unlock(): void {
    const next = this.waiters.shift()
    // Hand the lock straight to the next waiter, so nobody can barge in between.
    if (next) next()
    else this.locked = false
  }
}
