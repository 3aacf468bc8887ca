import type { SessionStatus, StatusChange } from '../domain/session-status.ts'

/** The payload of each domain event type. The webhooks issue extends this catalogue. */
export interface DomainEventMap {
  'session.status': { status: SessionStatus; statuses: StatusChange[]; lastError: string | null }
  'session.qr': { value: string; expiresAt: number }
  'session.pairing_code': { code: string; expiresAt: number }
}

export type DomainEventType = keyof DomainEventMap

/** The one envelope every event has, in the store, on webhooks and on the stream. */
export interface DomainEvent<T extends DomainEventType = DomainEventType> {
  id: string
  type: T
  organizationId: string
  session: { id: string; name: string; metadata: Record<string, string> } | null
  /** epoch milliseconds */
  timestamp: number
  data: DomainEventMap[T]
}
