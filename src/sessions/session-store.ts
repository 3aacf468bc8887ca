import type { IdGenerator } from '../domain/ids.ts'
import { appendStatus, type SessionStatus } from '../domain/session-status.ts'
import type { DomainEvent, DomainEventMap, DomainEventType } from '../events/catalogue.ts'
import type { EventBus } from '../events/event-bus.ts'
import type { Database } from '../store/db.ts'
import type { EventsRepository } from '../store/events.repository.ts'
import type { Executor } from '../store/schema.ts'
import type { SessionsRepository } from '../store/sessions.repository.ts'
import type { SessionPatch, SessionRecord, SessionStore } from './session.types.ts'
import type { SessionRepositoryPort } from './sessions.service.ts'

/**
 * Session persistence for the manager and the service. A status change and its
 * `session.status` event are written in one transaction, and published only after commit:
 * a subscriber never sees an event the store does not have.
 */
export class RepositorySessionStore implements SessionStore, SessionRepositoryPort {
  private readonly database: Database
  private readonly sessions: SessionsRepository
  private readonly events: EventsRepository
  private readonly bus: EventBus
  private readonly newId: IdGenerator
  private readonly now: () => number

  constructor(deps: {
    database: Database
    sessions: SessionsRepository
    events: EventsRepository
    bus: EventBus
    newId: IdGenerator
    now?: () => number
  }) {
    this.database = deps.database
    this.sessions = deps.sessions
    this.events = deps.events
    this.bus = deps.bus
    this.newId = deps.newId
    this.now = deps.now ?? Date.now
  }

  get(id: string): Promise<SessionRecord | undefined> {
    return this.sessions.getByIdUnscoped(id)
  }

  async transition(
    id: string,
    status: SessionStatus,
    patch: SessionPatch & { reason?: string } = {},
  ): Promise<SessionRecord> {
    const { reason, ...fields } = patch
    const at = this.now()
    const { session, event } = await this.database.db.transaction().execute(async (trx) => {
      const current = await this.sessions.getByIdUnscoped(id, trx)
      if (!current) throw new Error(`session ${id} vanished during a status change`)
      const statusHistory = appendStatus(current.statusHistory, { status, at, ...(reason ? { reason } : {}) })
      const session = await this.sessions.update(id, { ...fields, status, statusHistory, updatedAt: at }, trx)
      const event = await this.record(
        session,
        'session.status',
        {
          status,
          statuses: statusHistory,
          lastError: session.lastError,
        },
        trx,
      )
      return { session, event }
    })
    this.bus.publish(event)
    return session
  }

  update(id: string, patch: SessionPatch): Promise<SessionRecord> {
    return this.sessions.update(id, { ...patch, updatedAt: this.now() })
  }

  listDesiredRunning(): Promise<SessionRecord[]> {
    return this.sessions.listDesiredRunning()
  }

  async emit<T extends 'session.qr' | 'session.pairing_code'>(
    session: SessionRecord,
    type: T,
    data: DomainEventMap[T],
  ): Promise<void> {
    this.bus.publish(await this.record(session, type, data, this.database.db))
  }

  // ---- the service's view: tenant-scoped ----------------------------------------------

  create(record: SessionRecord): Promise<void> {
    return this.sessions.create(record)
  }

  getById(organizationId: string, id: string): Promise<SessionRecord | undefined> {
    return this.sessions.getById(organizationId, id)
  }

  getByName(organizationId: string, name: string): Promise<SessionRecord | undefined> {
    return this.sessions.getByName(organizationId, name)
  }

  list(organizationId: string, query: Parameters<SessionsRepository['listByOrganization']>[1]) {
    return this.sessions.listByOrganization(organizationId, query)
  }

  delete(id: string): Promise<void> {
    return this.sessions.delete(id)
  }

  private async record<T extends DomainEventType>(
    session: SessionRecord,
    type: T,
    data: DomainEventMap[T],
    trx: Executor,
  ): Promise<DomainEvent<T>> {
    const event: DomainEvent<T> = {
      id: this.newId('event'),
      type,
      organizationId: session.organizationId,
      session: { id: session.id, name: session.name, metadata: session.config.metadata },
      timestamp: this.now(),
      data,
    }
    await this.events.append(
      [
        {
          id: event.id,
          organizationId: event.organizationId,
          sessionId: session.id,
          type,
          payload: { session: event.session, data },
          createdAt: event.timestamp,
        },
      ],
      trx,
    )
    return event
  }
}
