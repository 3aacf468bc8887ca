import pg from 'pg'
import type { Logger } from 'pino'
import { GatewayInUseError } from './data-dir-lock.ts'

/** The advisory lock's key: the same for every wagate ("wagate" in ASCII, as an integer). */
const LOCK_KEY = '131260229973093'
/** How pg_locks shows a bigint key: its high and low 32 bits. */
const LOCK_CLASSID = Number(BigInt(LOCK_KEY) >> 32n)
const LOCK_OBJID = Number(BigInt(LOCK_KEY) & 0xffffffffn)
/** How often a lock whose connection was lost is asked for again. */
const RETAKE_EVERY_MS = 5_000
/** How long connecting, or the lock's query, may take before a start (or a retake) gives up. */
const CONNECT_TIMEOUT_MS = 10_000
/** How soon a quiet connection is probed: the system's default (two hours) would miss a dead one for that long. */
const KEEPALIVE_AFTER_MS = 10_000

export interface DatabaseLockOptions {
  logger?: Logger
  /**
   * Another gateway took the database while this one's lock was lost (a window of up to
   * `RETAKE_EVERY_MS`): both now run its sessions. The lock gives up; the owner should stop.
   * Without it, the lock logs an error and keeps asking.
   */
  onTakenOver?: (error: GatewayInUseError) => void
  /** for tests: how often a lost lock is asked for again */
  retakeEveryMs?: number
}

/**
 * One gateway per Postgres database, as per data directory (DataDirLock), until cluster
 * mode shares sessions between nodes: two gateways on one database both restored every
 * session, fought over each one's WhatsApp link (a sandbox session was logged out and its
 * credentials wiped), and sent deliveries past each other's circuit breakers (black-box
 * review, 2026-12-05).
 *
 * A session-level advisory lock, held on a connection of its own (not the pool's, whose
 * connections come and go; and not through a transaction-mode pooler, which would hand the
 * session to others): the server drops it when that connection ends, however the process
 * ended, so a crash leaves no stale lock. TCP keep-alive notices a connection that died
 * silently; the server's idle_session_timeout, which would end it every few minutes, is off
 * for it. Should the connection be lost while the gateway runs (a server restart), the lock
 * is asked for again until it is back — or until another gateway is found holding it, which
 * `onTakenOver` hears of.
 */
export class DatabaseLock {
  private client: pg.Client
  /** the server process of the connection that took the lock: it may outlive our end of it */
  private holderPid: number
  private readonly url: string
  private readonly options: DatabaseLockOptions
  private readonly logger?: Logger
  private released = false
  private retaking: NodeJS.Timeout | undefined
  /** a retake under way: `release` waits for it, so it cannot leave a lock behind */
  private retake: Promise<void> | undefined

  private constructor(client: pg.Client, holderPid: number, url: string, options: DatabaseLockOptions) {
    this.client = client
    this.holderPid = holderPid
    this.url = url
    this.options = options
    this.logger = options.logger
  }

  /** Takes the database's lock, or throws (GatewayInUseError) if another gateway holds it. */
  static async acquire(url: string, options: DatabaseLockOptions = {}): Promise<DatabaseLock> {
    let lock: DatabaseLock | undefined
    const client = connection(url, (error) => lock?.lost(client, error))
    let holderPid: number
    try {
      await client.connect()
      const taken = await tryLock(client)
      holderPid = taken.pid
      if (!taken.held) {
        throw new GatewayInUseError(
          `another wagate is using the database ${redacted(url)}; stop it, or give this one a database of its own (one gateway per database)`,
        )
      }
    } catch (error) {
      await client.end().catch(() => {})
      throw error
    }
    lock = new DatabaseLock(client, holderPid, url, options)
    return lock
  }

  async release(): Promise<void> {
    this.released = true
    clearTimeout(this.retaking)
    await this.retake
    // Ending the connection ends the lock.
    await this.client.end().catch(() => {})
  }

  /** The connection holding the lock ended with an error (a later error of an older one is old news). */
  private lost(client: pg.Client, error: Error): void {
    if (this.released || client !== this.client) return
    // Ended for good, should the error have left it half open: it must not keep the lock.
    void client.end().catch(() => {})
    this.logger?.error(
      { err: error },
      'the connection holding the database lock was lost; taking the lock again',
    )
    this.retakeSoon()
  }

  private retakeSoon(): void {
    if (this.released || this.retaking || this.retake) return
    this.retaking = setTimeout(() => {
      this.retaking = undefined
      this.retake = this.takeAgain().then((settled) => {
        this.retake = undefined
        if (!settled) this.retakeSoon()
      })
    }, this.options.retakeEveryMs ?? RETAKE_EVERY_MS)
    this.retaking.unref()
  }

  /** One try; true once there is nothing more to do (the lock is held again, or released, or taken over). */
  private async takeAgain(): Promise<boolean> {
    const client = connection(this.url, (error) => this.lost(client, error))
    try {
      await client.connect()
      const taken = this.released ? undefined : await tryLock(client)
      if (taken?.held && !this.released) {
        this.client = client
        this.holderPid = taken.pid
        this.logger?.info('the database lock is held again')
        return true
      }
      if (taken?.held || this.released) {
        await client.end().catch(() => {})
        return true
      }
      // Only our end of the old connection may have gone (a network cut): its server process,
      // still holding the lock, would be mistaken for another gateway's. It is ended; the next try takes the lock.
      const holder = await lockHolder(client)
      if (holder === this.holderPid) {
        await client.query('select pg_terminate_backend($1)', [holder])
        await client.end().catch(() => {})
        this.logger?.warn(
          { pid: holder },
          "the database lock's old connection was still open at the server; ended it, to take the lock again",
        )
        return false
      }
      await client.end().catch(() => {})
      if (holder === undefined) return false
      const error = new GatewayInUseError(
        `another wagate took the database ${redacted(this.url)} while this one's lock was lost; two gateways now run its sessions (one gateway per database)`,
      )
      if (this.options.onTakenOver) {
        // Given up: the owner stops this gateway, and asking again could only succeed once the other one stops.
        this.options.onTakenOver(error)
        return true
      }
      this.logger?.error(`${error.message}; stop one`)
    } catch (error) {
      await client.end().catch(() => {})
      if (this.released) return true
      this.logger?.warn({ err: error }, 'taking the database lock again failed; trying again')
    }
    return false
  }
}

/** A connection for the lock, listened to from the start: an error with no listener would end the process. */
function connection(url: string, onError: (error: Error) => void): pg.Client {
  const client = new pg.Client({
    connectionString: url,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_AFTER_MS,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: CONNECT_TIMEOUT_MS,
  })
  client.on('error', onError)
  return client
}

/** Tries for the lock on `client`; `pid`: the server process that would hold it. */
async function tryLock(client: pg.Client): Promise<{ held: boolean; pid: number }> {
  // Postgres 14+ may end idle sessions (idle_session_timeout); this one idles by design. Older
  // servers have no such setting, hence the lookup that may answer null.
  await client.query(
    `select set_config('idle_session_timeout', '0', false)
     where current_setting('idle_session_timeout', true) is not null`,
  )
  const { rows } = await client.query<{ held: boolean; pid: number }>(
    'select pg_try_advisory_lock($1::bigint) as held, pg_backend_pid() as pid',
    [LOCK_KEY],
  )
  return { held: rows[0]?.held === true, pid: Number(rows[0]?.pid) }
}

/** The server process holding the lock in this database, if any. */
async function lockHolder(client: pg.Client): Promise<number | undefined> {
  const { rows } = await client.query<{ pid: number }>(
    `select pid from pg_locks
     where locktype = 'advisory' and granted and classid = $1 and objid = $2 and objsubid = 1
       and database = (select oid from pg_database where datname = current_database())`,
    [LOCK_CLASSID, LOCK_OBJID],
  )
  return rows[0] === undefined ? undefined : Number(rows[0].pid)
}

/** The URL without its password (in the authority or as a parameter), to say which database is meant. */
function redacted(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***')
    return parsed.toString()
  } catch {
    return 'given in DATABASE_URL'
  }
}
