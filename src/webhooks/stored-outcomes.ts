import type { Logger } from 'pino'
import type {
  ClaimedDelivery,
  DeliveryCompletion,
  WebhookDeliveriesRepository,
} from '../store/webhook-deliveries.repository.ts'
import type { WebhooksRepository } from '../store/webhooks.repository.ts'
import { GONE_REASON, SESSION_GONE_REASON } from './delivery-outcome.ts'

/** A delivery tried (or handed back, or given up) whose outcome is not stored yet. */
export interface FinishedDelivery extends DeliveryCompletion {
  delivery: ClaimedDelivery
}

/**
 * The delivery worker's outcomes on their way into the store, and what follows once they
 * are there: a word on a lost lease or a dead delivery, and an endpoint that answered 410
 * retired.
 */
export class StoredOutcomes {
  private readonly deps: {
    deliveries: WebhookDeliveriesRepository
    webhooks: WebhooksRepository
    logger?: Logger
  }

  constructor(deps: StoredOutcomes['deps']) {
    this.deps = deps
  }

  /** Stores a batch in one transaction (one by one should that fail), then `afterStored`. */
  async store(batch: FinishedDelivery[]): Promise<void> {
    if (batch.length === 0) return
    let kept: Set<string>
    try {
      kept = await this.deps.deliveries.completeMany(batch)
    } catch (error) {
      kept = await this.storeOneByOne(batch, error)
    }
    await this.afterStored(batch, kept)
  }

  /**
   * When storing a batch failed (`error`): each outcome on its own, so one bad row (its
   * delivery deleted meanwhile) costs only itself. One that still fails stays leased, and
   * its delivery is sent again when the lease expires. The ids whose outcome was stored.
   */
  async storeOneByOne(batch: FinishedDelivery[], error: unknown): Promise<Set<string>> {
    const kept = new Set<string>()
    if (batch.length === 0) return kept
    this.deps.logger?.warn({ err: error, count: batch.length }, 'storing webhook outcomes together failed')
    for (const one of batch) {
      try {
        if (await this.deps.deliveries.complete(one.id, one.token, one.attempt, one.outcome)) kept.add(one.id)
      } catch (error) {
        this.logOf(one.delivery).error({ err: error }, 'storing a webhook outcome failed')
      }
    }
    return kept
  }

  /** What follows stored outcomes (`kept`: those whose lease still held): warnings, and a 410 retires its endpoint. */
  async afterStored(batch: FinishedDelivery[], kept: Set<string>): Promise<void> {
    // An endpoint that answered 410 to several deliveries of the batch is retired once.
    const retired = new Set<string>()
    for (const { delivery, attempt, outcome } of batch) {
      if (!attempt) continue
      if (!kept.has(delivery.id)) {
        this.logOf(delivery).warn('a delivery outlived its lease; another worker owns it now')
      }
      if (attempt.statusCode === 410 && !retired.has(delivery.endpointKey)) {
        retired.add(delivery.endpointKey)
        try {
          await this.retire(delivery, outcome.at)
        } catch (error) {
          this.logOf(delivery).error({ err: error }, 'retiring a gone webhook endpoint failed')
        }
      }
      if (outcome.status === 'dead') {
        this.logOf(delivery).warn(
          { attempts: attempt.number, lastError: outcome.lastError },
          'webhook delivery is dead',
        )
      }
    }
  }

  /** The delivery's child logger, made only when there is something to log. */
  logOf(delivery: ClaimedDelivery): Pick<Logger, 'warn' | 'error'> {
    return this.deps.logger?.child({ deliveryId: delivery.id, endpoint: delivery.endpointKey }) ?? SILENT
  }

  /**
   * 410 Gone: an organization webhook is disabled (re-enable it to resume); for a session
   * webhook, whose config we do not own, what is queued for it is given up (the worker
   * gives up what comes for it next, for a while, without a request).
   */
  private async retire(delivery: ClaimedDelivery, at: number): Promise<void> {
    if (delivery.webhookId !== null) await this.deps.webhooks.disable(delivery.webhookId, GONE_REASON, at)
    const reason = delivery.webhookId === null ? SESSION_GONE_REASON : GONE_REASON
    await this.deps.deliveries.killPending(delivery.endpointKey, reason, at)
    this.deps.logger?.warn(
      { endpoint: delivery.endpointKey },
      'webhook receiver is gone (410); endpoint retired',
    )
  }
}

const SILENT: Pick<Logger, 'warn' | 'error'> = { warn: () => {}, error: () => {} }
