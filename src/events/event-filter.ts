import { z } from 'zod'
import type { Principal } from '../accounts/api-key.types.ts'
import type { DomainEvent } from './catalogue.ts'
import { EVENT_TYPES } from './event-schemas.ts'

/** `message.*` matches `message.received`; `*` matches everything; otherwise exact. */
export function matchesType(pattern: string, type: string): boolean {
  if (pattern === '*') return true
  if (pattern.endsWith('.*')) return type.startsWith(pattern.slice(0, -1))
  return pattern === type
}

/**
 * Whether a filter pattern can ever match: `*`, a type of the catalogue, or a family
 * (`group.*`) with at least one type in it. A pattern naming no type is a typo that would
 * silently filter out everything, so callers reject it.
 */
export function isKnownEventPattern(pattern: string): boolean {
  return EVENT_TYPES.some((type) => matchesType(pattern, type))
}

/** The patterns that name no event type, for an error that lists them. */
export const unknownEventPatterns = (patterns: readonly string[]): string[] =>
  patterns.filter((pattern) => !isKnownEventPattern(pattern))

/** A subscription's event pattern, as webhooks and session webhooks accept it. */
export const eventPattern = z
  .string()
  .max(64)
  .refine(isKnownEventPattern, 'not an event type of the catalogue, a family such as message.*, or *')

export interface EventFilter {
  types: string[]
  sessionIds: string[] | null
}

/** Whether `event` is for this principal (organization, key scope) and matches the filter. */
export function visibleTo(principal: Principal, filter: EventFilter, event: DomainEvent): boolean {
  if (event.organizationId !== principal.organizationId) return false
  const sessionId = event.session?.id
  if (principal.sessionIds && (!sessionId || !principal.sessionIds.includes(sessionId))) return false
  if (filter.sessionIds && (!sessionId || !filter.sessionIds.includes(sessionId))) return false
  return filter.types.length === 0 || filter.types.some((pattern) => matchesType(pattern, event.type))
}
