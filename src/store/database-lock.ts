import pg from 'pg'
import type { Logger } from 'pino'
import { GatewayInUseError } from './data-dir-lock.ts'

/** The advisory lock's key: the same for every wagate ("wagate" in ASCII, as an integer). */
const LOCK_KEY = '131260229973093'
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
  private readonly url: string
  private readonly options: DatabaseLockOptions
  private readonly logger?: Logger
  private released = false
  private retaking: NodeJS.Timeout | undefined
  /** a retake under way: `release` waits for it, so it cannot leave a lock behind */
  private retake: Promise<void> | undefined

  private constructor(client: pg.Client, url: string, options: DatabaseLockOptions) {
    this.client = client
    this.url = url
    this.options = options
    this.logger = options.logger
  }

  /** Takes the database's lock, or throws (GatewayInUseError) if another gateway holds it. */
  static async acquire(url: string, options: DatabaseLockOptions = {}): Promise<DatabaseLock> {
    let lock: DatabaseLock | undefined
    const client = connection(url, (error) => lock?.lost(client, error))
    try {
      await client.connect()
      if (!(await tryLock(client))) {
        throw new GatewayInUseError(
          `another wagate is using the database ${redacted(url)}; stop it, or give this one a database of its own (one gateway per database)`,
        )
      }
    } catch (error) {
      await client.end().catch(() => {})
      throw error
    }
    lock = new DatabaseLock(client, url, options)
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

  /** One try; true once there is nothing more to do (the lock is held again, or released). */
  private async takeAgain(): Promise<boolean> {
    const client = connection(this.url, (error) => this.lost(client, error))
    try {
      await client.connect()
      const held = !this.released && (await tryLock(client))
      if (held && !this.released) {
        this.client = client
        this.logger?.info('the database lock is held again')
        return true
      }
      await client.end().catch(() => {})
      if (held || this.released) return true
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

async function tryLock(client: pg.Client): Promise<boolean> {
  // Postgres 14+ may end idle sessions (idle_session_timeout); this one idles by design. Older
  // servers have no such setting, hence the lookup that may answer null.
  await client.query(
    `select set_config('idle_session_timeout', '0', false)
     where current_setting('idle_session_timeout', true) is not null`,
  )
  const { rows } = await client.query<{ held: boolean }>('select pg_try_advisory_lock($1::bigint) as held', [
    LOCK_KEY,
  ])
  return rows[0]?.held === true
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
