import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'

export interface WalCheckpointerOptions {
  /** the SQLite file, already in WAL mode */
  path: string
  /** how often the log is copied back */
  intervalMs?: number
  logger?: Logger
}

/** Between two copies, a busy gateway writes a few hundred pages (a few MiB) to the log. */
const DEFAULT_INTERVAL_MS = 250

/**
 * Copies SQLite's write-ahead log back into the database file from a worker thread of its
 * own, with its own connection. SQLite otherwise does it inside the commit that crosses
 * 1,000 logged pages, on the event loop: reading the log, writing the pages and syncing
 * both files stalled every request for milliseconds and cost the webhook worker a tenth of
 * its throughput (bench/webhooks.ts, 2026-12-05). The copies are passive: they never wait
 * for, or block, the gateway's writes. The gateway's connection keeps a checkpoint of its
 * own at a higher mark (see `openSqliteFile`), which finds nearly every page copied already
 * and lets the log start over; it is also the safety net should this thread stop.
 */
export class WalCheckpointer {
  private readonly worker: Worker
  /** settles when the thread is gone, however it went */
  private readonly exited: Promise<void>
  private stopped = false

  private constructor(worker: Worker) {
    this.worker = worker
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()))
  }

  static start(options: WalCheckpointerOptions): WalCheckpointer {
    const worker = new Worker(new URL('./wal-checkpointer.worker.ts', import.meta.url), {
      workerData: { path: options.path, intervalMs: options.intervalMs ?? DEFAULT_INTERVAL_MS },
    })
    const checkpointer = new WalCheckpointer(worker)
    worker.on('message', (message: { failed?: string }) => {
      if (message.failed) options.logger?.warn({ err: message.failed }, 'background WAL checkpoint failed')
    })
    worker.on('error', (error) => {
      options.logger?.warn({ err: error }, 'the background WAL checkpointer stopped')
    })
    // Never keeps the process alive on its own; a failure only hands the work back to the commits.
    // After the listeners: adding one would hold the thread's port, and the process, again.
    worker.unref()
    return checkpointer
  }

  /** Stops the thread (a copy under way finishes first: the connection closes between copies). */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    // Held by the process again until it is gone, or the process could end while waiting.
    // (Posting to a thread that has already exited does nothing; `exited` has settled then.)
    this.worker.ref()
    this.worker.postMessage('stop')
    await this.exited
  }
}
