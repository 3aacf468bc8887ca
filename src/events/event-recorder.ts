import type { IdGenerator } from '../domain/ids.ts'
import type { Database } from '../store/db.ts'
import type { EventsRepository } from '../store/events.repository.ts'
import type { Executor } from '../store/schema.ts'
import type { SessionWebhookConfig } from '../webhooks/subscriptions.ts'
import type { DomainEvent, DomainEventMap, DomainEventType } from './catalogue.ts'
import type { EventBus } from './event-bus.ts'

/** The session an event is about, as every envelope names it. */
export interface EventSession {
  id: string
  organizationId: string
  name: string
  metadata: Record<string, string>
  /** the session's own webhooks (config.webhooks), owed every matching event */
  webhooks?: readonly SessionWebhookConfig[]
}

/** Where events become webhook deliveries, in the transaction that stores them. */
export interface DeliveryOutbox {
  enqueueDeliveries(
    events: readonly DomainEvent[],
    sessionWebhooks: readonly SessionWebhookConfig[],
    trx: Executor,
  ): Promise<number>
}

/**
 * Writes domain events to the store — inside the caller's transaction when there is one —
 * and publishes them once stored. Publishing is a separate step so a caller can publish
 * only after its transaction committed.
 */
export class EventRecorder {
  private readonly events: EventsRepository
  private readonly bus: EventBus
  private readonly newId: IdGenerator
  private readonly now: () => number
  private readonly database?: Database
  private readonly outbox?: DeliveryOutbox

  constructor(deps: {
    events: EventsRepository
    bus: EventBus
    newId: IdGenerator
    now?: () => number
    /** with an outbox, every stored event also becomes its webhook deliveries, atomically */
    database?: Database
    outbox?: DeliveryOutbox
  }) {
    this.events = deps.events
    this.bus = deps.bus
    this.newId = deps.newId
    this.now = deps.now ?? Date.now
    this.database = deps.database
    this.outbox = deps.outbox
  }

  /** Stores the events (one statement) and returns them, unpublished. */
  async store<T extends DomainEventType>(
    session: EventSession,
    items: { type: T; data: DomainEventMap[T] }[],
    trx?: Executor,
  ): Promise<DomainEvent<T>[]> {
    const envelopes = items.map(
      ({ type, data }): DomainEvent<T> => ({
        id: this.newId('event'),
        type,
        organizationId: session.organizationId,
        session: { id: session.id, name: session.name, metadata: session.metadata },
        timestamp: this.now(),
        data,
      }),
    )
    if (envelopes.length === 0) return envelopes
    const records = envelopes.map((event) => ({
      id: event.id,
      organizationId: event.organizationId,
      sessionId: session.id,
      type: event.type,
      payload: { session: event.session, data: event.data },
      createdAt: event.timestamp,
    }))
    const outbox = this.outbox
    const database = this.database
    if (!outbox || !database) {
      await this.events.append(records, trx)
      return envelopes
    }
    // The event and the deliveries it owes commit together: a crash cannot lose either.
    const write = async (executor: Executor) => {
      await this.events.append(records, executor)
      await outbox.enqueueDeliveries(envelopes, session.webhooks ?? [], executor)
    }
    if (trx) await write(trx)
    else await database.db.transaction().execute(write)
    return envelopes
  }

  /** Forgets a deleted session's events. */
  async forgetSession(sessionId: string, trx?: Executor): Promise<void> {
    await this.events.deleteBySession(sessionId, trx)
  }

  publish(events: DomainEvent[]): void {
    for (const event of events) this.bus.publish(event)
  }

  /** Store then publish, for callers without a transaction of their own. */
  async record<T extends DomainEventType>(
    session: EventSession,
    items: { type: T; data: DomainEventMap[T] }[],
  ) {
    const stored = await this.store(session, items)
    this.publish(stored)
    return stored
  }
}
