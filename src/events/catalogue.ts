import type { SessionStatus, StatusChange } from '../domain/session-status.ts'
import type { MessageStatus, NormalizedMessage } from '../messages/message.types.ts'

/** A message as events carry it: the normalized shape with wagate's id. */
export type MessageEventData = NormalizedMessage & { id: string; status: MessageStatus | null }

/** The payload of each domain event type. The webhooks issue extends this catalogue. */
export interface DomainEventMap {
  'session.status': { status: SessionStatus; statuses: StatusChange[]; lastError: string | null }
  'session.qr': { value: string; expiresAt: number }
  'session.pairing_code': { code: string; expiresAt: number }
  'message.received': MessageEventData
  'message.sent': MessageEventData
  'message.status': { id: string; waId: string; chatJid: string; status: MessageStatus; reason?: string }
  'message.reaction': MessageEventData
  'message.edited': MessageEventData
  'message.deleted': MessageEventData
  'poll.vote': MessageEventData
  'history.sync': {
    syncType: string
    progress: number | null
    messages: number
    chats: number
    contacts: number
  }
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
