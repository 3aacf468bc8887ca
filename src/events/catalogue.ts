import type { z } from 'zod'
import type { EVENT_SCHEMAS, messageEventSchema, WireEvent } from './event-schemas.ts'

/** A message as events carry it: the normalized shape with wagate's id. */
export type MessageEventData = z.output<typeof messageEventSchema>

/**
 * The payload of each domain event type, inferred from its schema (event-schemas.ts): the
 * catalogue is closed, and a type and its published schema cannot drift apart.
 */
export type DomainEventMap = { [T in keyof typeof EVENT_SCHEMAS]: z.output<(typeof EVENT_SCHEMAS)[T]> }

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

/** An event as the store holds it: its columns, and `payload` = `{ session, data }` parsed. */
export interface StoredEvent {
  id: string
  type: string
  organizationId: string
  createdAt: number
  payload: unknown
}

export function fromStored(record: StoredEvent): DomainEvent {
  const payload = record.payload as { session: DomainEvent['session']; data: DomainEvent['data'] }
  return {
    id: record.id,
    type: record.type as DomainEvent['type'],
    organizationId: record.organizationId,
    session: payload.session,
    timestamp: record.createdAt,
    data: payload.data,
  }
}

/**
 * The bytes webhooks carry: the wire envelope as JSON. The same event gives the same bytes
 * whether it is in memory or read back from the store (`fromStored`), so every attempt of
 * a delivery sends, and signs, the same body.
 */
export function wireBody(event: DomainEvent): string {
  return JSON.stringify(wireEvent(event))
}

/** The envelope as the API shows it: `organization`, and the time in ISO 8601. */
export function wireEvent(event: DomainEvent): WireEvent {
  return {
    id: event.id,
    type: event.type,
    session: event.session,
    organization: event.organizationId,
    timestamp: new Date(event.timestamp).toISOString(),
    data: event.data,
  }
}
