import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { invalidState, notFound } from '../domain/errors.ts'
import type {
  DeliveryListQuery,
  DeliveryOwner,
  DeliveryPage,
  LogPosition,
  ReplayOptions,
  WebhookDeliveriesRepository,
} from '../store/webhook-deliveries.repository.ts'
import type { WebhooksRepository } from '../store/webhooks.repository.ts'
import { type SessionWebhookConfig, sessionEndpointKey, sessionWebhookTarget } from './subscriptions.ts'
import type {
  AttemptRecord,
  DeliveryRecord,
  ReplayRange,
  WebhookRecord,
  WebhookTarget,
} from './webhook.types.ts'

/**
 * Log rows a bulk replay looks at per transaction, a turn of the event loop between: the
 * writer lock is never held for long, however long the log.
 */
const REPLAY_STEP_ROWS = 500

/** A delivery with the bytes it sends and every attempt. */
export interface DeliveryDetail {
  delivery: DeliveryRecord
  body: string | null
  attempts: AttemptRecord[]
}

/**
 * The delivery log of organization webhooks and of sessions' own webhooks (their config's,
 * which have no id: their deliveries are their session's): what was sent, every attempt,
 * and replays of what died — one delivery, or every one of a time range.
 */
export class WebhookDeliveriesService {
  private readonly webhooks: WebhooksRepository
  private readonly deliveries: WebhookDeliveriesRepository
  private readonly now: () => number
  private readonly onReplay: (endpointKeys: readonly string[]) => void
  private readonly heldBackUntil: (endpointKey: string, now: number) => number | undefined

  constructor(deps: {
    webhooks: WebhooksRepository
    deliveries: WebhookDeliveriesRepository
    now?: () => number
    /** deliveries to these endpoints were replayed and are due: wake the worker */
    onReplay?: (endpointKeys: readonly string[]) => void
    /**
     * When the endpoint's open circuit lets a probe through (the worker's `heldBackUntil`);
     * undefined unless it is open: nothing of it is tried before then.
     */
    heldBackUntil?: (endpointKey: string, now: number) => number | undefined
  }) {
    this.webhooks = deps.webhooks
    this.deliveries = deps.deliveries
    this.now = deps.now ?? Date.now
    this.onReplay = deps.onReplay ?? (() => {})
    this.heldBackUntil = deps.heldBackUntil ?? (() => undefined)
  }

  async listDeliveries(organizationId: string, id: string, query: DeliveryListQuery): Promise<DeliveryPage> {
    await this.webhook(organizationId, id)
    return this.shownPage(await this.deliveries.listByWebhook(organizationId, id, query))
  }

  async getDelivery(organizationId: string, id: string, deliveryId: string): Promise<DeliveryDetail> {
    return this.detail(organizationId, id, deliveryId)
  }

  /** Sends a dead delivery again, with a fresh retry budget. */
  async retryDelivery(organizationId: string, id: string, deliveryId: string): Promise<DeliveryRecord> {
    const webhook = await this.webhook(organizationId, id)
    const existing = await this.deadDelivery(organizationId, id, deliveryId)
    if (!webhook.enabled) throw invalidState('the webhook is disabled: enable it before retrying')
    return this.replay(organizationId, id, existing)
  }

  /**
   * Sends every dead delivery created in `range` again, each with a fresh retry budget: the
   * way back from an outage longer than the retry schedule. How many went.
   */
  async retryDeadDeliveries(
    organizationId: string,
    id: string,
    range: ReplayRange,
  ): Promise<{ retried: number }> {
    const webhook = await this.webhook(organizationId, id)
    if (!webhook.enabled) throw invalidState('the webhook is disabled: enable it before retrying')
    const { replayed } = await this.replayDead(organizationId, id, range)
    return { retried: replayed }
  }

  /**
   * `retryDeadDeliveries` for a session's own webhooks, each sent as the session's webhook
   * at its URL is now; those whose URL is no longer in the config are skipped.
   */
  async retrySessionDeadDeliveries(
    organizationId: string,
    session: { id: string; webhooks: readonly SessionWebhookConfig[] },
    range: ReplayRange,
  ): Promise<{ retried: number; skipped: number }> {
    const targets = new Map(
      session.webhooks.map((webhook) => [
        sessionEndpointKey(session.id, webhook.url),
        sessionWebhookTarget(webhook),
      ]),
    )
    const { replayed, skipped } = await this.replayDead(
      organizationId,
      { sessionId: session.id },
      range,
      targets,
    )
    return { retried: replayed, skipped }
  }

  /** The deliveries of a session's own webhooks (its config's; they have no webhook id), newest first. */
  async listSessionDeliveries(
    organizationId: string,
    sessionId: string,
    query: DeliveryListQuery,
  ): Promise<DeliveryPage> {
    return this.shownPage(await this.deliveries.listByWebhook(organizationId, { sessionId }, query))
  }

  async getSessionDelivery(
    organizationId: string,
    sessionId: string,
    deliveryId: string,
  ): Promise<DeliveryDetail> {
    return this.detail(organizationId, { sessionId }, deliveryId)
  }

  /**
   * Sends a dead delivery of a session webhook again, with a fresh retry budget, as the
   * session's webhook at that URL is now (its headers, key and retries: the copy taken at
   * enqueue may hold a rotated token) — if there still is one: one taken out of the config
   * is not sent to.
   */
  async retrySessionDelivery(
    organizationId: string,
    session: { id: string; webhooks: readonly SessionWebhookConfig[] },
    deliveryId: string,
  ): Promise<DeliveryRecord> {
    const owner = { sessionId: session.id }
    const existing = await this.deadDelivery(organizationId, owner, deliveryId)
    const webhook = session.webhooks.find(
      (candidate) => sessionEndpointKey(session.id, candidate.url) === existing.endpointKey,
    )
    if (!webhook) throw invalidState("the session's config no longer has a webhook at this delivery's URL")
    return this.replay(organizationId, owner, existing, sessionWebhookTarget(webhook))
  }

  private async detail(
    organizationId: string,
    owner: DeliveryOwner,
    deliveryId: string,
  ): Promise<DeliveryDetail> {
    const delivery = await this.deliveries.getById(organizationId, owner, deliveryId)
    if (!delivery) throw notFound('delivery')
    return {
      delivery: this.shown(delivery),
      body: (await this.deliveries.getBody(deliveryId)) ?? null,
      attempts: await this.deliveries.listAttempts(deliveryId),
    }
  }

  /** When a delivery replayed now will be tried: now, or when its endpoint's open circuit lets a probe through. */
  private dueAt(endpointKey: string, now: number): number {
    return this.heldBackUntil(endpointKey, now) ?? now
  }

  /**
   * A pending delivery as it stands: not tried before its endpoint's open circuit lets a
   * probe through, whatever its row says. A retry scheduled just before the circuit opened
   * (its outcome stored after the walk that moved the others) says a time already past.
   */
  private shown(delivery: DeliveryRecord): DeliveryRecord {
    if (delivery.status !== 'pending') return delivery
    const heldBack = this.heldBackUntil(delivery.endpointKey, this.now())
    return heldBack !== undefined && heldBack > delivery.nextAttemptAt
      ? { ...delivery, nextAttemptAt: heldBack }
      : delivery
  }

  private shownPage(page: DeliveryPage): DeliveryPage {
    return { ...page, items: page.items.map((delivery) => this.shown(delivery)) }
  }

  private async deadDelivery(organizationId: string, owner: DeliveryOwner, deliveryId: string) {
    const existing = await this.deliveries.getById(organizationId, owner, deliveryId)
    if (!existing) throw notFound('delivery')
    if (existing.status !== 'dead') {
      throw invalidState(`only a dead delivery can be retried; this one is ${existing.status}`)
    }
    return existing
  }

  /**
   * Walks the owner's log from `since` in stretches, a turn of the event loop between, and
   * sends again what is dead and was created in the range — a session webhook's as `targets`
   * has its endpoint now, skipped when it is not there any more. The worker is woken after
   * each stretch that made deliveries due.
   */
  private async replayDead(
    organizationId: string,
    owner: DeliveryOwner,
    { since, until }: ReplayRange,
    targets?: ReadonlyMap<string, WebhookTarget>,
  ): Promise<{ replayed: number; skipped: number }> {
    const total = { replayed: 0, skipped: 0 }
    // seq is an enqueue time in µs, never below its row's created_at (outbox.ts): the walk
    // starts at `since`. It goes on to the end of the log even with `until`: seq runs ahead of
    // created_at after a burst, or a clock that stepped back, by as much as those lasted.
    const stretch = { from: since * 1000, limit: REPLAY_STEP_ROWS }
    let after: LogPosition | undefined
    for (;;) {
      const rows = await this.deliveries.logStretch(organizationId, owner, { ...stretch, after })
      const now = this.now()
      // Replayed together: the same target (a session webhook's, as its config has it now) and the same due time.
      const batches = new Map<string, { options: ReplayOptions; ids: string[] }>()
      const endpoints = new Set<string>()
      for (const row of rows) {
        if (row.status !== 'dead' || row.createdAt < since || (until !== undefined && row.createdAt >= until))
          continue
        const target = targets?.get(row.endpointKey)
        if (targets && !target) {
          total.skipped++
          continue
        }
        const dueAt = this.dueAt(row.endpointKey, now)
        const key = `${row.endpointKey}|${dueAt}`
        const batch = batches.get(key) ?? { options: { ...(target ? { target } : {}), dueAt }, ids: [] }
        batch.ids.push(row.id)
        batches.set(key, batch)
        endpoints.add(row.endpointKey)
      }
      let replayed = 0
      for (const { options, ids } of batches.values())
        replayed += await this.deliveries.replayMany(ids, now, options)
      total.replayed += replayed
      if (replayed > 0) this.onReplay([...endpoints])
      after = rows.at(-1)
      if (rows.length < REPLAY_STEP_ROWS) return total
      await yieldToEventLoop()
    }
  }

  private async replay(
    organizationId: string,
    owner: DeliveryOwner,
    existing: DeliveryRecord,
    target?: WebhookTarget,
  ) {
    const now = this.now()
    const replayed = await this.deliveries.replay(organizationId, owner, existing.id, now, {
      ...(target ? { target } : {}),
      dueAt: this.dueAt(existing.endpointKey, now),
    })
    if (!replayed) throw invalidState('the delivery changed meanwhile; look at it again')
    this.onReplay([replayed.endpointKey])
    return replayed
  }

  private async webhook(organizationId: string, id: string): Promise<WebhookRecord> {
    const webhook = await this.webhooks.getById(organizationId, id)
    if (!webhook) throw notFound('webhook')
    return webhook
  }
}
