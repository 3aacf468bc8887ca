import { createHash } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { IdGenerator } from '../domain/ids.ts'
import type { EngineConnection, EngineMessage } from '../engine/engine.ts'
import type { MediaFilesRepository } from '../store/media-files.repository.ts'
import type { MessagesRepository } from '../store/messages.repository.ts'
import type { MediaDescriptor } from './message.types.ts'

export interface MediaJob {
  sessionId: string
  messageId: string
  message: EngineMessage
  connection: EngineConnection
  descriptor: MediaDescriptor
}

/**
 * Downloads inbound media in the background, a few at a time, into
 * `DATA_DIR/media/<session>/<mediaId>` — a name we generate, never one from the network —
 * and records it so `GET …/media/{mediaId}` can serve it. A failed download leaves the
 * message without a `mediaId`; it is logged, not retried in a loop.
 */
export class MediaDownloader {
  private readonly deps: {
    dataDir: string
    mediaFiles: MediaFilesRepository
    messages: MessagesRepository
    newId: IdGenerator
    logger: Logger
    concurrency?: number
    maxBytes?: number
  }
  private readonly queue: MediaJob[] = []
  private running = 0
  private idleWaiters: (() => void)[] = []

  constructor(deps: MediaDownloader['deps']) {
    this.deps = deps
  }

  enqueue(job: MediaJob): void {
    this.queue.push(job)
    this.pump()
  }

  /** Resolves when nothing is queued or downloading (tests and shutdown). */
  idle(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  directoryOf(sessionId: string): string {
    return join(this.deps.dataDir, 'media', sessionId)
  }

  async removeSession(sessionId: string): Promise<void> {
    await rm(this.directoryOf(sessionId), { recursive: true, force: true })
  }

  private pump(): void {
    const limit = this.deps.concurrency ?? 2
    while (this.running < limit && this.queue.length > 0) {
      const job = this.queue.shift()
      if (!job) break
      this.running += 1
      void this.download(job)
        .catch((err) =>
          this.deps.logger.warn(
            { err, sessionId: job.sessionId, messageId: job.messageId },
            'media download failed',
          ),
        )
        .finally(() => {
          this.running -= 1
          this.pump()
          if (this.running === 0 && this.queue.length === 0)
            for (const resolve of this.idleWaiters.splice(0)) resolve()
        })
    }
  }

  private async download(job: MediaJob): Promise<void> {
    const bytes = await job.connection.downloadMedia(job.message)
    const maxBytes = this.deps.maxBytes ?? 100 * 1024 * 1024
    if (bytes.length > maxBytes)
      throw new Error(`media of ${bytes.length} bytes is over the ${maxBytes} byte limit`)
    const mediaId = this.deps.newId('media')
    const directory = this.directoryOf(job.sessionId)
    await mkdir(directory, { recursive: true, mode: 0o700 })
    const path = join(directory, mediaId)
    await writeFile(path, bytes, { mode: 0o600 })
    await this.deps.mediaFiles.create({
      id: mediaId,
      sessionId: job.sessionId,
      messageId: job.messageId,
      path,
      mimetype: job.descriptor.mimetype,
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      createdAt: Date.now(),
    })
    await this.deps.messages.update(job.messageId, {
      media: { ...job.descriptor, mediaId, size: bytes.length },
    })
  }
}
