import type { IdGenerator } from '../domain/ids.ts'
import type { Database } from '../store/db.ts'
import type { EventsRepository } from '../store/events.repository.ts'
import type { Executor } from '../store/schema.ts'
import type { SessionWebhookConfig } from '../webhooks/subscriptions.ts'
import { type DomainEvent, type DomainEventMap, type DomainEventType, fromStored } from './catalogue.ts'
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

/** Events of one session, with that session's own webhooks. */
export interface DeliveryGroup {
  events: readonly DomainEvent[]
  sessionWebhooks: readonly SessionWebhookConfig[]
}

/** Where events become webhook deliveries, in the transaction that stores them. */
export interface DeliveryOutbox {
  enqueueGroups(groups: readonly DeliveryGroup[], trx: Executor): Promise<number>
  /** events being deleted: their deliveries not yet delivered keep the bodies stored with them */
  keepBodies(events: readonly DomainEvent[], trx: Executor): Promise<void>
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
  private readonly gathered: Gathered[] = []
  /** the group being gathered and stored; new calls join it until it takes them */
  private gathering: Promise<void> | undefined
  /** groups not yet stored, the one gathering included */
  private readonly storing = new Set<Promise<void>>()
  /** the latest event timestamp made: a clock stepping back must not take timestamps with it */
  private lastTimestamp = 0

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

  /**
   * Stores the events (one statement) and returns them, unpublished. Their ids are made
   * once the database is held — inside `trx`, or the transaction this opens — so that ids
   * follow commit order (see record()).
   */
  async store<T extends DomainEventType>(
    session: EventSession,
    items: { type: T; data: DomainEventMap[T] }[],
    trx?: Executor,
  ): Promise<DomainEvent<T>[]> {
    if (items.length === 0) return []
    const outbox = this.outbox
    const database = this.database
    if (!outbox || !database) {
      const envelopes = this.envelopes(session, items)
      await this.events.append(toRecords(envelopes), trx)
      return envelopes
    }
    // The event and the deliveries it owes commit together: a crash cannot lose either.
    const write = async (executor: Executor) => {
      const envelopes = this.envelopes(session, items)
      await this.write([{ session, envelopes }], executor)
      return envelopes
    }
    return trx ? write(trx) : database.db.transaction().execute(write)
  }

  /** Forgets a deleted session's events; webhook deliveries still owed keep their bodies. */
  async forgetSession(sessionId: string, trx?: Executor): Promise<void> {
    const outbox = this.outbox
    const database = this.database
    if (!outbox || !database) {
      await this.events.deleteBySession(sessionId, trx)
      return
    }
    const forget = async (executor: Executor) => {
      const carried = await this.events.deleteBySessionReturningCarried(sessionId, executor)
      await outbox.keepBodies(carried.map(fromStored), executor)
    }
    await (trx ? forget(trx) : database.db.transaction().execute(forget))
  }

  publish(events: DomainEvent[]): void {
    for (const event of events) this.bus.publish(event)
  }

  /**
   * Store then publish, for callers without a transaction of their own. The calls made in
   * one turn of the event loop are stored together at its end, in one transaction (group
   * commit): many sessions' presence updates, chat changes and actions cost one commit, not
   * one each. The events get their ids and timestamps inside that transaction, as every
   * event stored in a caller's transaction does, so ids follow the order events are
   * committed in — what the stream's resume cursor and ordered webhooks rely on. Resolves
   * with the events once stored and published; a call whose events cannot be stored rejects
   * alone.
   */
  record<T extends DomainEventType>(
    session: EventSession,
    items: { type: T; data: DomainEventMap[T] }[],
  ): Promise<DomainEvent<T>[]> {
    if (items.length === 0) return Promise.resolve([])
    return new Promise((resolve, reject) => {
      this.gathered.push({
        session,
        items,
        envelopes: [],
        resolve: (envelopes) => resolve(envelopes as DomainEvent<T>[]),
        reject,
      })
      if (this.gathering) return
      const storing = new Promise<void>((turnEnded) => setImmediate(turnEnded))
        .then(() => this.storeGathered())
        .finally(() => this.storing.delete(storing))
      this.gathering = storing
      this.storing.add(storing)
    })
  }

  /** Resolves once every record() call made so far is stored (or failed): at shutdown. */
  async idle(): Promise<void> {
    while (this.storing.size > 0) await Promise.allSettled([...this.storing])
  }

  private async storeGathered(): Promise<void> {
    const group = this.gathered.splice(0)
    this.gathering = undefined
    const settled = new Set<Gathered>()
    const done = (call: Gathered, error?: unknown) => {
      settled.add(call)
      if (error === undefined) {
        this.publish(call.envelopes)
        call.resolve(call.envelopes)
      } else {
        call.reject(error)
      }
    }
    try {
      try {
        await this.storeTogether(group)
      } catch (error) {
        if (group.length === 1) throw error
        // One call's bad events must not cost the others theirs: each is tried alone.
        for (const call of group) {
          try {
            await this.storeTogether([call])
          } catch (error) {
            done(call, error)
            continue
          }
          done(call)
        }
        return
      }
      for (const call of group) done(call)
    } catch (error) {
      // Whatever went wrong, no caller is left waiting.
      for (const call of group) if (!settled.has(call)) done(call, error)
    }
  }

  /** Gives each call its envelopes, once the database is ours, and writes them. */
  private async storeTogether(group: Gathered[]): Promise<void> {
    const mint = () => {
      for (const call of group) call.envelopes = this.envelopes(call.session, call.items)
    }
    const database = this.database
    if (!this.outbox || !database) {
      mint()
      await this.events.append(group.flatMap((call) => toRecords(call.envelopes)))
      return
    }
    await database.db.transaction().execute(async (trx) => {
      mint()
      await this.write(group, trx)
    })
  }

  /** The events of every call, then the deliveries each owes (its session's webhooks differ). */
  private async write(group: Pick<Gathered, 'session' | 'envelopes'>[], trx: Executor): Promise<void> {
    await this.events.append(
      group.flatMap((call) => toRecords(call.envelopes)),
      trx,
    )
    await this.outbox?.enqueueGroups(
      group.map(({ session, envelopes }) => ({ events: envelopes, sessionWebhooks: session.webhooks ?? [] })),
      trx,
    )
  }

  /**
   * Never before the last one: the stream's resume cursor orders by (timestamp, id), and an
   * event stamped earlier than one a client already saw would never be replayed to it.
   */
  private timestamp(): number {
    this.lastTimestamp = Math.max(this.now(), this.lastTimestamp)
    return this.lastTimestamp
  }

  private envelopes<T extends DomainEventType>(
    session: EventSession,
    items: { type: T; data: DomainEventMap[T] }[],
  ): DomainEvent<T>[] {
    return items.map(
      ({ type, data }): DomainEvent<T> => ({
        id: this.newId('event'),
        type,
        organizationId: session.organizationId,
        session: { id: session.id, name: session.name, metadata: session.metadata },
        timestamp: this.timestamp(),
        data,
      }),
    )
  }
}

/** A record() call waiting for the end of the loop turn. */
interface Gathered {
  session: EventSession
  items: { type: DomainEventType; data: DomainEventMap[DomainEventType] }[]
  /** made when the call's transaction has begun */
  envelopes: DomainEvent[]
  resolve: (envelopes: DomainEvent[]) => void
  reject: (error: unknown) => void
}

const toRecords = (envelopes: readonly DomainEvent[]) =>
  envelopes.map((event) => ({
    id: event.id,
    organizationId: event.organizationId,
    sessionId: event.session?.id ?? null,
    type: event.type,
    payload: { session: event.session, data: event.data },
    createdAt: event.timestamp,
  }))
