import pg from 'pg'
import type { Logger } from 'pino'
import { GatewayInUseError } from './data-dir-lock.ts'

/** The advisory lock's key: the same for every wagate ("wagate" in ASCII). */
const LOCK_KEY = '131277007123045'
/** How often a lock whose connection was lost is asked for again. */
const RETAKE_EVERY_MS = 5_000

/**
 * One gateway per Postgres database, as per data directory (DataDirLock), until cluster
 * mode shares sessions between nodes: two gateways on one database both restored every
 * session, fought over each one's WhatsApp link (a sandbox session was logged out and its
 * credentials wiped), and sent deliveries past each other's circuit breakers (black-box
 * review, 2026-12-05).
 *
 * A session-level advisory lock, held on a connection of its own (not the pool's, whose
 * connections come and go): the server drops it when that connection ends, however the
 * process ended, so a crash leaves no stale lock. Should the connection be lost while the
 * gateway runs (a server restart), the lock is asked for again until it is back.
 */
export class DatabaseLock {
  private client: pg.Client
  private readonly url: string
  private readonly logger?: Logger
  private released = false
  private retaking: NodeJS.Timeout | undefined

  private constructor(client: pg.Client, url: string, logger?: Logger) {
    this.client = client
    this.url = url
    this.logger = logger
    this.watch(client)
  }

  /** Takes the database's lock, or throws (GatewayInUseError) if another gateway holds it. */
  static async acquire(url: string, logger?: Logger): Promise<DatabaseLock> {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    let held: boolean
    try {
      held = await tryLock(client)
    } catch (error) {
      await client.end().catch(() => {})
      throw error
    }
    if (!held) {
      await client.end().catch(() => {})
      throw new GatewayInUseError(
        `another wagate is using the database ${redacted(url)}; stop it, or give this one a database of its own (one gateway per database)`,
      )
    }
    return new DatabaseLock(client, url, logger)
  }

  async release(): Promise<void> {
    this.released = true
    clearTimeout(this.retaking)
    // Ending the connection ends the lock.
    await this.client.end().catch(() => {})
  }

  private watch(client: pg.Client): void {
    // Without a listener an ended connection would be an uncaught exception.
    client.on('error', (error) => {
      if (this.released) return
      this.logger?.error(
        { err: error },
        'the connection holding the database lock was lost; taking the lock again',
      )
      this.retakeSoon()
    })
  }

  private retakeSoon(): void {
    if (this.released || this.retaking) return
    this.retaking = setTimeout(() => {
      this.retaking = undefined
      void this.retake()
    }, RETAKE_EVERY_MS)
    this.retaking.unref()
  }

  private async retake(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url })
    try {
      await client.connect()
      if (this.released) {
        await client.end()
        return
      }
      if (await tryLock(client)) {
        this.client = client
        this.watch(client)
        this.logger?.info('the database lock is held again')
        return
      }
      this.logger?.error(
        'another gateway took this database while its lock was lost: two gateways now run its sessions; stop one',
      )
      await client.end().catch(() => {})
    } catch (error) {
      await client.end().catch(() => {})
      this.logger?.warn({ err: error }, 'taking the database lock again failed; trying again')
    }
    this.retakeSoon()
  }
}

async function tryLock(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ held: boolean }>('select pg_try_advisory_lock($1::bigint) as held', [
    LOCK_KEY,
  ])
  return rows[0]?.held === true
}

/** The URL without its password, to say which database is meant. */
function redacted(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return 'given in DATABASE_URL'
  }
}
