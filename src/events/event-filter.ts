import type { Principal } from '../accounts/api-key.types.ts'
import type { DomainEvent } from './catalogue.ts'

/** `message.*` matches `message.received`; `*` matches everything; otherwise exact. */
export function matchesType(pattern: string, type: string): boolean {
  if (pattern === '*') return true
  if (pattern.endsWith('.*')) return type.startsWith(pattern.slice(0, -1))
  return pattern === type
}

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
