import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { Database } from '../store/db.ts'
import type { EventPosition, EventsRepository } from '../store/events.repository.ts'
import type { WebhookDeliveriesRepository } from '../store/webhook-deliveries.repository.ts'

const HOUR_MS = 3_600_000
/** How long a resume point stays safe from pruning once a stream has accepted it. */
const HORIZON_MARGIN_MS = 60_000

export interface EventRetentionOptions {
  database: Pick<Database, 'db'>
  events: Pick<EventsRepository, 'nextOrganizationId' | 'listCreatedBefore' | 'deleteUnowed'>
  deliveries: Pick<WebhookDeliveriesRepository, 'deleteSettledByEvents' | 'deleteSettledOrphans'>
  /** EVENT_RETENTION_HOURS; 0 keeps everything */
  retentionHours: number
  /** between passes (default 5 minutes) */
  intervalMs?: number
  /** before the first pass, so it does not compete with restoring sessions (default 30 s) */
  firstPassDelayMs?: number
  /** events per transaction (default 500) */
  batchSize?: number
  now?: () => number
  logger?: Logger
}

/** What one pass deleted. */
export interface PruneResult {
  events: number
  deliveries: number
}

/**
 * Keeps the event log (and the webhook delivery log with it) to the configured window.
 * In the background: passes run on an unref'd timer, never overlap, and delete in small
 * transactions with a turn of the event loop between them, so requests — and, on SQLite,
 * other writers — wait at most one batch.
 *
 * The rules: an event older than the window is deleted with its settled (delivered or
 * dead) deliveries and their attempts; an event a delivery still owes (pending, retrying
 * or in flight) is kept, with all its deliveries, until that delivery settles; settled
 * deliveries whose event is already gone (a deleted session's) are deleted once older than
 * the window.
 */
export class EventRetention {
  private readonly options: EventRetentionOptions
  private readonly retentionMs: number
  private readonly batchSize: number
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined
  private running = false
  /** set by stop(): a pass in progress ends after its current batch */
  private stopping = false
  private pass: Promise<PruneResult> | undefined

  constructor(options: EventRetentionOptions) {
    this.options = options
    this.retentionMs = Math.max(0, options.retentionHours) * HOUR_MS
    this.batchSize = options.batchSize ?? 500
    this.now = options.now ?? Date.now
  }

  /** Whether anything is ever pruned (EVENT_RETENTION_HOURS > 0). */
  get enabled(): boolean {
    return this.retentionMs > 0
  }

  /**
   * The oldest time a reader may resume from: no pass prunes an event created at or after
   * it for the next minute — time for a stream to replay what follows. Undefined while
   * events are kept forever.
   */
  horizon(): number | undefined {
    return this.enabled ? this.now() - this.retentionMs + HORIZON_MARGIN_MS : undefined
  }

  start(): void {
    if (this.running || !this.enabled) return
    this.running = true
    this.stopping = false
    this.schedule(this.options.firstPassDelayMs ?? 30_000)
  }

  /** Stops scheduling and waits for a pass in progress to finish its current batch. */
  async stop(): Promise<void> {
    this.running = false
    this.stopping = true
    clearTimeout(this.timer)
    this.timer = undefined
    await this.pass?.catch(() => undefined)
  }

  /** One pass now (or the one already running). */
  runOnce(): Promise<PruneResult> {
    if (!this.enabled) return Promise.resolve({ events: 0, deliveries: 0 })
    this.pass ??= this.prune().finally(() => {
      this.pass = undefined
    })
    return this.pass
  }

  private schedule(delayMs: number): void {
    if (!this.running) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.runOnce()
        .catch((err: unknown) => this.options.logger?.warn({ err }, 'event retention pass failed'))
        .finally(() => this.schedule(this.options.intervalMs ?? 300_000))
    }, delayMs)
    // Housekeeping must never keep the process alive.
    this.timer.unref()
  }

  private async prune(): Promise<PruneResult> {
    const { events, deliveries, database, logger } = this.options
    const cutoff = this.now() - this.retentionMs
    const total: PruneResult = { events: 0, deliveries: 0 }
    // Checked between batches: a closing app waits for one batch, not a whole backlog.
    const stopped = () => this.stopping
    let organizationId = await events.nextOrganizationId()
    while (organizationId !== undefined && !stopped()) {
      let after: EventPosition | undefined
      for (;;) {
        const batch = await events.listCreatedBefore(organizationId, cutoff, {
          ...(after ? { after } : {}),
          limit: this.batchSize,
        })
        if (batch.length === 0) break
        const ids = batch.map((event) => event.id)
        // Deliveries first: an event that turns out to be owed keeps them all.
        const deleted = await database.db.transaction().execute(async (trx) => ({
          deliveries: await deliveries.deleteSettledByEvents(ids, trx),
          events: await events.deleteUnowed(ids, trx),
        }))
        total.events += deleted.events
        total.deliveries += deleted.deliveries
        after = batch.at(-1)
        if (batch.length < this.batchSize || stopped()) break
        await yieldToEventLoop()
      }
      organizationId = await events.nextOrganizationId(organizationId)
    }
    while (!stopped()) {
      const orphans = await deliveries.deleteSettledOrphans(cutoff, this.batchSize)
      total.deliveries += orphans
      if (orphans < this.batchSize) break
      await yieldToEventLoop()
    }
    if (total.events > 0 || total.deliveries > 0) {
      logger?.debug({ ...total, retentionHours: this.options.retentionHours }, 'pruned old events')
    }
    return total
  }
}
