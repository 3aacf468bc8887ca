import type { IdGenerator } from '../domain/ids.ts'
import { type DomainEvent, wireEvent } from '../events/catalogue.ts'
import type { DeliveryGroup } from '../events/event-recorder.ts'
import type { Executor } from '../store/schema.ts'
import type { NewDelivery, WebhookDeliveriesRepository } from '../store/webhook-deliveries.repository.ts'
import type { WebhooksRepository } from '../store/webhooks.repository.ts'
import { type SessionWebhookConfig, subscriptionsFor } from './subscriptions.ts'
import type { WebhookRecord } from './webhook.types.ts'

let lastSeq = 0

/**
 * Enqueue order: epoch microseconds, bumped past the previous value so two deliveries in
 * the same millisecond still sort in the order they were made. Ordered endpoints deliver by
 * it; a session's events come from the one node running it, so one process's order is the
 * order that matters.
 */
function nextSeq(now: number): number {
  lastSeq = Math.max(now * 1000, lastSeq + 1)
  return lastSeq
}

/**
 * The write side of the webhook outbox. Callers pass the transaction that stores the
 * event, so an event and the deliveries it owes commit together or not at all — a crash
 * between the two cannot lose a delivery.
 */
export class WebhookOutbox {
  /** events given deliveries, until they are collected */
  private readonly owing = new WeakSet<DomainEvent>()
  private readonly webhooks: WebhooksRepository
  private readonly deliveries: WebhookDeliveriesRepository
  private readonly newId: IdGenerator
  private readonly now: () => number

  constructor(deps: {
    webhooks: WebhooksRepository
    deliveries: WebhookDeliveriesRepository
    newId: IdGenerator
    now?: () => number
  }) {
    this.webhooks = deps.webhooks
    this.deliveries = deps.deliveries
    this.newId = deps.newId
    this.now = deps.now ?? Date.now
  }

  /**
   * Whether `event` was given deliveries: only then is the worker worth waking once the
   * event is published (a wake is a claim transaction, and most events go to no webhook).
   */
  owesDeliveries(event: DomainEvent): boolean {
    return this.owing.has(event)
  }

  /**
   * Writes one pending delivery per endpoint each event is owed to: the organization's
   * matching webhooks, and `sessionWebhooks` — the `config.webhooks` of the session the
   * events are about (pass `[]` when there is none). Returns how many were written.
   */
  async enqueueDeliveries(
    events: DomainEvent | readonly DomainEvent[],
    sessionWebhooks: readonly SessionWebhookConfig[],
    trx: Executor,
  ): Promise<number> {
    const list: readonly DomainEvent[] = Array.isArray(events) ? events : [events as DomainEvent]
    return this.enqueueGroups([{ events: list, sessionWebhooks }], trx)
  }

  /**
   * enqueueDeliveries for several groups of events at once (the recorder's calls of one
   * loop turn, each with its session's webhooks), written with one statement.
   */
  async enqueueGroups(groups: readonly DeliveryGroup[], trx: Executor): Promise<number> {
    const byOrganization = new Map<string, readonly WebhookRecord[]>()
    const rows: NewDelivery[] = []
    for (const { events, sessionWebhooks } of groups) {
      for (const event of events) {
        let webhooks = byOrganization.get(event.organizationId)
        if (!webhooks) {
          webhooks = await this.webhooks.listEnabledRecent(event.organizationId, trx)
          byOrganization.set(event.organizationId, webhooks)
        }
        const subscriptions = subscriptionsFor(event, webhooks, sessionWebhooks)
        if (subscriptions.length === 0) continue
        this.owing.add(event)
        // Serialized once: every endpoint and every retry sends (and signs) these same bytes.
        const body = JSON.stringify(wireEvent(event))
        const at = this.now()
        const sessionId = event.session?.id ?? null
        for (const subscription of subscriptions) {
          rows.push({
            id: this.newId('delivery'),
            organizationId: event.organizationId,
            webhookId: subscription.webhookId,
            endpointKey: subscription.endpointKey,
            sessionId,
            eventId: event.id,
            eventType: event.type,
            body,
            target: subscription.target,
            orderingKey: subscription.ordered ? `${subscription.endpointKey}|${sessionId ?? ''}` : null,
            seq: nextSeq(at),
            createdAt: at,
          })
        }
      }
    }
    await this.deliveries.createMany(rows, trx)
    return rows.length
  }
}
