/*
 * The thread of `WalCheckpointer`: its own connection to the gateway's SQLite file, copying
 * the write-ahead log back into the database every `intervalMs`.
 */
import { DatabaseSync } from 'node:sqlite'
import { parentPort, workerData } from 'node:worker_threads'

const { path, intervalMs } = workerData as { path: string; intervalMs: number }
const port = parentPort
if (!port) throw new Error('wal-checkpointer.worker.ts runs as a worker thread')

const database = new DatabaseSync(path)
// PASSIVE: copy what is committed, without waiting for (or holding up) the gateway's writer.
const checkpoint = database.prepare('PRAGMA wal_checkpoint(PASSIVE)')

const timer = setInterval(() => {
  try {
    checkpoint.get()
  } catch (error) {
    port.postMessage({ failed: error instanceof Error ? error.message : String(error) })
  }
}, intervalMs)

port.on('message', (message: unknown) => {
  if (message !== 'stop') return
  clearInterval(timer)
  database.close()
  port.close()
})
