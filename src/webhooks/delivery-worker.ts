import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { DeliveryOutcome, WebhookDeliveriesRepository } from '../store/webhook-deliveries.repository.ts'
import type { WebhooksRepository } from '../store/webhooks.repository.ts'
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker.ts'
import { nextAttemptAt } from './retry-policy.ts'
import type { WebhookSender } from './sender.ts'
import { webhookTarget } from './subscriptions.ts'
import type { AttemptRecord, DeliveryRecord, WebhookTarget } from './webhook.types.ts'

export interface DeliveryWorkerOptions {
  webhooks: WebhooksRepository
  deliveries: WebhookDeliveriesRepository
  sender: WebhookSender
  logger?: Logger
  /** the clock deliveries are scheduled by; tests move it by hand */
  now?: () => number
  /** [0, 1), for retry jitter */
  random?: () => number
  /** how often to look for due deliveries when nothing wakes the worker */
  pollIntervalMs?: number
  /** deliveries in flight at once */
  concurrency?: number
  /** how long a claim holds; must outlast a request (the sender's timeout) */
  leaseMs?: number
  circuit?: Partial<CircuitBreakerOptions>
}

const GONE_REASON = 'the receiver answered 410 Gone; the webhook was disabled'

/**
 * The read side of the outbox: claims due deliveries with a lease, sends each, records
 * every attempt and schedules the next per the endpoint's retry policy. The rows are the
 * truth — a worker that dies mid-request leaves a lease that expires, and the delivery is
 * tried again (at least once, never lost).
 */
export class DeliveryWorker {
  private readonly webhooks: WebhooksRepository
  private readonly deliveries: WebhookDeliveriesRepository
  private readonly sender: WebhookSender
  private readonly logger?: Logger
  private readonly now: () => number
  private readonly random: () => number
  private readonly pollIntervalMs: number
  private readonly concurrency: number
  private readonly leaseMs: number
  readonly breaker: CircuitBreaker
  private readonly inFlight = new Set<Promise<void>>()
  private running = false
  private ticking: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private wokenWhileTicking = false

  constructor(options: DeliveryWorkerOptions) {
    this.webhooks = options.webhooks
    this.deliveries = options.deliveries
    this.sender = options.sender
    this.logger = options.logger
    this.now = options.now ?? Date.now
    this.random = options.random ?? Math.random
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000
    this.concurrency = options.concurrency ?? 32
    this.leaseMs = options.leaseMs ?? options.sender.requestTimeoutMs + 60_000
    this.breaker = new CircuitBreaker(options.circuit)
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.schedule(0)
  }

  /** Stops claiming and waits for the deliveries in flight (each is bounded by the request timeout). */
  async stop(): Promise<void> {
    this.running = false
    clearTimeout(this.timer)
    this.timer = undefined
    await this.ticking
    await Promise.all(this.inFlight)
  }

  /** Something was enqueued or finished: look for due work now instead of at the next poll. */
  wake(): void {
    if (!this.running) return
    if (this.ticking) {
      this.wokenWhileTicking = true
      return
    }
    clearTimeout(this.timer)
    this.schedule(0)
  }

  /** One claim, every claimed delivery sent and settled; how many there were. For tests and tools. */
  async runOnce(): Promise<number> {
    const runs = await this.dispatch()
    await Promise.all(runs)
    return runs.length
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.ticking = this.tick()
    }, delayMs)
  }

  private async tick(): Promise<void> {
    try {
      await this.dispatch()
    } catch (error) {
      this.logger?.error({ err: error }, 'claiming webhook deliveries failed')
    }
    // Cleared before deciding what next, so a wake from here on schedules at once.
    this.ticking = undefined
    if (!this.running) return
    const again = this.wokenWhileTicking
    this.wokenWhileTicking = false
    this.schedule(again ? 0 : this.pollIntervalMs)
  }

  /** Claims what free slots allow and starts sending; resolves once the sends have started. */
  private async dispatch(): Promise<Promise<void>[]> {
    const free = this.concurrency - this.inFlight.size
    if (free <= 0) return []
    const now = this.now()
    const token = randomUUID()
    const probes = new Set<string>()
    let claimed: DeliveryRecord[]
    try {
      claimed = await this.deliveries.claimDue({
        now,
        limit: free,
        leaseMs: this.leaseMs,
        token,
        blockedKeys: this.breaker.blockedKeys(now),
        admit: (delivery) => {
          const probing = this.breaker.state(delivery.endpointKey, now) === 'half-open'
          if (!this.breaker.admit(delivery.endpointKey, now)) return false
          if (probing) probes.add(delivery.endpointKey)
          return true
        },
      })
    } catch (error) {
      for (const key of probes) this.breaker.cancel(key)
      throw error
    }
    // A probe slot taken for a row another worker leased first goes back.
    for (const key of probes) {
      if (!claimed.some((delivery) => delivery.endpointKey === key)) this.breaker.cancel(key)
    }
    return claimed.map((delivery) => {
      const run = this.deliver(delivery, token).finally(() => {
        this.inFlight.delete(run)
        this.wake()
      })
      this.inFlight.add(run)
      return run
    })
  }

  private async deliver(delivery: DeliveryRecord, token: string): Promise<void> {
    const log = this.logger?.child({ deliveryId: delivery.id, endpoint: delivery.endpointKey })
    try {
      const target = await this.targetOf(delivery)
      if (!target) {
        this.breaker.cancel(delivery.endpointKey)
        await this.deliveries.complete(delivery.id, token, null, {
          status: 'dead',
          nextAttemptAt: delivery.nextAttemptAt,
          lastStatusCode: delivery.lastStatusCode,
          lastError: 'the webhook is disabled or deleted',
          deliveredAt: null,
          at: this.now(),
        })
        return
      }
      const startedAt = this.now()
      const result = await this.sender.send({ target, eventId: delivery.eventId, body: delivery.body })
      const attempt: AttemptRecord = {
        deliveryId: delivery.id,
        number: delivery.attempts + 1,
        startedAt,
        ...result,
      }
      const at = this.now()
      const outcome = this.judge(delivery, target, attempt, at)
      const kept = await this.deliveries.complete(delivery.id, token, attempt, outcome)
      if (!kept) log?.warn('a delivery outlived its lease; another worker owns it now')
      if (attempt.statusCode === 410) await this.retire(delivery, at)
      if (outcome.status === 'dead') log?.warn({ attempts: attempt.number }, 'webhook delivery is dead')
    } catch (error) {
      // The lease expires and the delivery is claimed again: nothing is lost.
      log?.error({ err: error }, 'webhook delivery failed unexpectedly')
    }
  }

  /** Organization webhooks are read fresh (an edit or disable applies to queued deliveries). */
  private async targetOf(delivery: DeliveryRecord): Promise<WebhookTarget | null> {
    if (delivery.webhookId === null) return delivery.target
    const webhook = await this.webhooks.getByIdUnscoped(delivery.webhookId)
    return webhook?.enabled ? webhookTarget(webhook) : null
  }

  /** 2xx delivers; 410 gives up on the endpoint; anything else retries per policy until spent. */
  private judge(
    delivery: DeliveryRecord,
    target: WebhookTarget,
    attempt: AttemptRecord,
    at: number,
  ): DeliveryOutcome {
    const code = attempt.statusCode
    const base = { lastStatusCode: code, at }
    if (code !== null && code >= 200 && code < 300) {
      this.breaker.onSuccess(delivery.endpointKey)
      return { ...base, status: 'delivered', nextAttemptAt: at, lastError: null, deliveredAt: at }
    }
    if (code === 410) {
      this.breaker.onSuccess(delivery.endpointKey)
      return { ...base, status: 'dead', nextAttemptAt: at, lastError: GONE_REASON, deliveredAt: null }
    }
    this.breaker.onFailure(delivery.endpointKey, at)
    const lastError = attempt.error ?? `HTTP ${code}`
    const next = nextAttemptAt(target.retries, attempt.number - delivery.replayOffset, at, this.random)
    return next === null
      ? { ...base, status: 'dead', nextAttemptAt: at, lastError, deliveredAt: null }
      : { ...base, status: 'pending', nextAttemptAt: next, lastError, deliveredAt: null }
  }

  /**
   * 410 Gone: an organization webhook is disabled (re-enable it to resume); for a session
   * webhook, whose config we do not own, what is queued for it is given up.
   */
  private async retire(delivery: DeliveryRecord, at: number): Promise<void> {
    if (delivery.webhookId !== null) await this.webhooks.disable(delivery.webhookId, GONE_REASON, at)
    await this.deliveries.killPending(delivery.endpointKey, GONE_REASON, at)
    this.logger?.warn({ endpoint: delivery.endpointKey }, 'webhook receiver is gone (410); endpoint retired')
  }
}
