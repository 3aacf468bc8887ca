import type { SessionStatus } from '../domain/session-status.ts'
import type { DomainEventMap } from '../events/catalogue.ts'
import type { SessionRecord, SessionRowPatch } from '../store/sessions.repository.ts'

/** A session in domain shape; the repository maps rows to it. Secrets in `config` are sealed. */
export type { SessionRecord } from '../store/sessions.repository.ts'

/** What status-independent updates may change (status changes go through `transition`). */
export type SessionPatch = Omit<SessionRowPatch, 'statusHistory' | 'updatedAt'>

/** Persistence the session manager needs; every status change is stored with its event. */
export interface SessionStore {
  get(id: string): Promise<SessionRecord | undefined>
  /** stores the new status (appending to the history) with a `session.status` event, then publishes it */
  transition(
    id: string,
    status: SessionStatus,
    patch?: SessionPatch & { reason?: string },
  ): Promise<SessionRecord>
  update(id: string, patch: SessionPatch): Promise<SessionRecord>
  listDesiredRunning(): Promise<SessionRecord[]>
  /** stores and publishes an event about the session that changes nothing else */
  emit<T extends 'session.qr' | 'session.pairing_code'>(
    session: SessionRecord,
    type: T,
    data: DomainEventMap[T],
  ): Promise<void>
}
