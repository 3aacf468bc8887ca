import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'

/** The file whose lock says a gateway is using the data directory. */
export const LOCK_FILE = 'wagate.lock'

/** A start refused because another gateway holds the data directory or the database: said in one line, not a stack. */
export class GatewayInUseError extends Error {
  override readonly name = 'GatewayInUseError'
}

/**
 * One gateway per data directory. Two on one directory both run its sessions, with one
 * set of WhatsApp credentials, and write over each other's state: one stopping beside one
 * starting marked the new one's live sessions stopped (black-box review, 2026-12-05).
 *
 * The lock is an exclusive SQLite transaction held on a file of its own: the operating
 * system drops it when the process ends, however it ends, so there is never a stale lock
 * to clean up after a crash — and it works wherever the database does.
 */
export class DataDirLock {
  private readonly file: DatabaseSync

  private constructor(file: DatabaseSync) {
    this.file = file
  }

  /** Takes the data directory's lock, or throws if another gateway holds it. */
  static acquire(dataDir: string): DataDirLock {
    const file = new DatabaseSync(join(dataDir, LOCK_FILE))
    try {
      file.exec('PRAGMA busy_timeout = 0')
      file.exec('BEGIN EXCLUSIVE')
    } catch (error) {
      file.close()
      throw new GatewayInUseError(
        `another wagate is using the data directory ${dataDir} (it holds ${LOCK_FILE}); stop it, or give this one a DATA_DIR of its own`,
        { cause: error },
      )
    }
    return new DataDirLock(file)
  }

  release(): void {
    if (!this.file.isOpen) return
    this.file.exec('ROLLBACK')
    this.file.close()
  }
}
