import { appendStatus, type SessionStatus } from '../domain/session-status.ts'
import type { DomainEvent, DomainEventMap, DomainEventType } from '../events/catalogue.ts'
import type { EventRecorder, EventSession } from '../events/event-recorder.ts'
import type { Database } from '../store/db.ts'
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
  private readonly recorder: EventRecorder
  private readonly now: () => number

  constructor(deps: {
    database: Database
    sessions: SessionsRepository
    recorder: EventRecorder
    now?: () => number
  }) {
    this.database = deps.database
    this.sessions = deps.sessions
    this.recorder = deps.recorder
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
    this.recorder.publish([event])
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
    this.recorder.publish([await this.record(session, type, data)])
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

  /** The session row (credentials, messages, chats… cascade with it) and its events, in one transaction. */
  async delete(id: string): Promise<void> {
    await this.database.db.transaction().execute(async (trx) => {
      await this.recorder.forgetSession(id, trx)
      await this.sessions.delete(id, trx)
    })
  }

  private async record<T extends DomainEventType>(
    session: SessionRecord,
    type: T,
    data: DomainEventMap[T],
    trx?: Executor,
  ): Promise<DomainEvent<T>> {
    const [event] = await this.recorder.store(eventSession(session), [{ type, data }], trx)
    if (!event) throw new Error('an event was not stored')
    return event
  }
}

/** How events name a session. */
export const eventSession = (session: SessionRecord): EventSession => ({
  id: session.id,
  organizationId: session.organizationId,
  name: session.name,
  metadata: session.config.metadata,
  webhooks: session.config.webhooks,
})
