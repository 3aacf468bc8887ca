import type { IdGenerator } from '../domain/ids.ts'
import { type DomainEvent, wireBody } from '../events/catalogue.ts'
import type { DeliveryGroup } from '../events/event-recorder.ts'
import type { Executor } from '../store/schema.ts'
import type { NewDelivery, WebhookDeliveriesRepository } from '../store/webhook-deliveries.repository.ts'
import type { ClaimedDelivery } from '../store/webhook-delivery-rows.ts'
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
 * The delivery worker's side of a direct handoff: fresh deliveries it has room for are
 * written already leased to it, and given to it once their transaction has committed — no
 * claim has to find them.
 */
export interface DeliveryHandoff {
  /**
   * A lease for up to `room` fresh deliveries whose bodies are at most `maxBodyLength` long,
   * or none while the worker takes none.
   */
  offer(now: number): { token: string; lockedUntil: number; room: number; maxBodyLength: number } | undefined
  /**
   * Whether deliveries to this endpoint may go straight to the worker: its circuit is
   * closed, and it holds less than its share, counting `takenAlready` for it in this enqueue.
   */
  takes(endpointKey: string, now: number, takenAlready: number): boolean
  /** When deliveries to this endpoint may be tried, if not now: its circuit is open until then. */
  heldBackUntil(endpointKey: string, now: number): number | undefined
  /** Deliveries leased at enqueue, now committed: to be sent. */
  adopt(deliveries: readonly ClaimedDelivery[]): void
  /** Deliveries were enqueued unleased, to these endpoints: a claim will find them. */
  wake(endpointKeys: readonly string[]): void
}

/** What an event was given, until it is published. */
interface Owed {
  /** deliveries leased at enqueue (less any the insert did not write) */
  leased: ClaimedDelivery[]
  /** the endpoints of deliveries left for a claim */
  unleasedTo: string[]
}

/**
 * The write side of the webhook outbox. Callers pass the transaction that stores the
 * event, so an event and the deliveries it owes commit together or not at all — a crash
 * between the two cannot lose a delivery.
 *
 * With a handoff, deliveries the worker has room for are written leased to it, and handed
 * to it when the event is published (which callers do after their transaction commits):
 * the rows stay the truth — a handed delivery the worker never finishes falls due again
 * when its lease ends, like a claimed one — while a busy worker is spared a claim query
 * and a lease update per batch. A handed delivery carries its organization webhook as it
 * stood in that transaction, as a claimed one carries it as it stood at the claim. Ordered
 * endpoints' deliveries always wait for a claim, which keeps their order.
 */
export class WebhookOutbox {
  /** events given deliveries, until they are published or collected */
  private readonly owing = new WeakMap<DomainEvent, Owed>()
  private readonly webhooks: WebhooksRepository
  private readonly deliveries: WebhookDeliveriesRepository
  private readonly newId: IdGenerator
  private readonly now: () => number
  private readonly handoff?: DeliveryHandoff

  constructor(deps: {
    webhooks: WebhooksRepository
    deliveries: WebhookDeliveriesRepository
    newId: IdGenerator
    now?: () => number
    handoff?: DeliveryHandoff
  }) {
    this.webhooks = deps.webhooks
    this.deliveries = deps.deliveries
    this.newId = deps.newId
    this.now = deps.now ?? Date.now
    this.handoff = deps.handoff
  }

  /**
   * `event` is committed and published: the worker gets what was leased to it, and is woken
   * for what was not (a wake is a claim transaction, and most events go to no webhook).
   */
  published(event: DomainEvent): void {
    const owed = this.owing.get(event)
    if (!owed) return
    this.owing.delete(event)
    if (owed.leased.length > 0) this.handoff?.adopt(owed.leased)
    if (owed.unleasedTo.length > 0) this.handoff?.wake(owed.unleasedTo)
  }

  /**
   * These events are being deleted (with their session): deliveries not yet delivered whose
   * body was stored with the event keep it themselves.
   */
  async keepBodies(events: readonly DomainEvent[], trx: Executor): Promise<void> {
    await this.deliveries.keepBodies(
      events.map((event) => ({ eventId: event.id, body: wireBody(event) })),
      trx,
    )
  }

  /**
   * Writes one pending delivery per endpoint each event is owed to: the organization's
   * matching webhooks, and `sessionWebhooks` — the `config.webhooks` of the session the
   * events are about (pass `[]` when there is none). Returns how many were written.
   * `trx` must be the transaction that stores the events: their rows hold the bodies.
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
    const at = this.now()
    // Before the reads: a webhook written from here on makes what is handed over stale.
    const webhooksVersion = this.webhooks.version
    // Asked for at the first delivery: most events go to no webhook.
    let offer: ReturnType<DeliveryHandoff['offer']> | null = null
    let room = 0
    /** handed over per endpoint in this enqueue: the worker counts them only once they are adopted */
    const takenBy = new Map<string, number>()
    let lease: NewDelivery['lease']
    const owedNow = new Set<Owed>()
    for (const { events, sessionWebhooks } of groups) {
      for (const event of events) {
        let webhooks = byOrganization.get(event.organizationId)
        if (!webhooks) {
          webhooks = await this.webhooks.listEnabledRecent(event.organizationId, trx)
          byOrganization.set(event.organizationId, webhooks)
        }
        const subscriptions = subscriptionsFor(event, webhooks, sessionWebhooks)
        if (subscriptions.length === 0) continue
        // What this enqueue leased, only: an earlier enqueue of the same event may have been rolled back.
        const owed: Owed = { leased: [], unleasedTo: [] }
        this.owing.set(event, owed)
        owedNow.add(owed)
        const sessionId = event.session?.id ?? null
        if (offer === null) {
          offer = this.handoff?.offer(at)
          room = offer?.room ?? 0
          lease = offer && { token: offer.token, lockedUntil: offer.lockedUntil }
        }
        // Serialized once, and only for what is handed over: every endpoint and every retry
        // sends (and signs) these same bytes. The rows store none: a claim builds the same
        // from the event's row, which the caller stores in this transaction.
        const body = room > 0 ? wireBody(event) : ''
        for (const subscription of subscriptions) {
          const id = this.newId('delivery')
          const seq = nextSeq(at)
          const leasedTo =
            room > 0 &&
            !subscription.ordered &&
            body.length <= (offer?.maxBodyLength ?? 0) &&
            this.handoff?.takes(subscription.endpointKey, at, takenBy.get(subscription.endpointKey) ?? 0)
              ? lease
              : undefined
          if (leasedTo) {
            room--
            takenBy.set(subscription.endpointKey, (takenBy.get(subscription.endpointKey) ?? 0) + 1)
            owed.leased.push({
              id,
              webhookId: subscription.webhookId,
              endpointKey: subscription.endpointKey,
              eventId: event.id,
              body,
              seq,
              attempts: 0,
              replayOffset: 0,
              nextAttemptAt: at,
              lastStatusCode: null,
              lastError: null,
              lockedUntil: leasedTo.lockedUntil,
              leaseToken: leasedTo.token,
              sendTo: subscription.sendTo,
              ...(subscription.webhookId !== null ? { webhooksVersion } : {}),
            })
          } else {
            owed.unleasedTo.push(subscription.endpointKey)
          }
          const dueAt = leasedTo ? undefined : this.handoff?.heldBackUntil(subscription.endpointKey, at)
          rows.push({
            id,
            organizationId: event.organizationId,
            webhookId: subscription.webhookId,
            endpointKey: subscription.endpointKey,
            sessionId,
            eventId: event.id,
            eventType: event.type,
            body: null,
            target: subscription.target,
            orderingKey: subscription.ordered ? `${subscription.endpointKey}|${sessionId ?? ''}` : null,
            seq,
            createdAt: at,
            ...(leasedTo ? { lease: leasedTo } : {}),
            ...(dueAt !== undefined ? { dueAt } : {}),
          })
        }
      }
    }
    // A leased row that met an existing delivery of its event and endpoint was not written.
    const unwritten = await this.deliveries.createMany(rows, trx)
    if (unwritten.size > 0) {
      for (const owed of owedNow) owed.leased = owed.leased.filter((delivery) => !unwritten.has(delivery.id))
    }
    return rows.length
  }
}
