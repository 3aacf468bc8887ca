import { randomBytes } from 'node:crypto'
import type { Principal } from '../accounts/api-key.types.ts'
import { AppError, invalidRequest } from '../domain/errors.ts'
import { type DomainEvent, fromStored } from '../events/catalogue.ts'
import type { EventBus } from '../events/event-bus.ts'
import { type EventFilter, visibleTo } from '../events/event-filter.ts'
import type { EventRecord, EventsRepository } from '../store/events.repository.ts'

const TICKET_TTL_MS = 60_000
/** Revoked keys remembered: far more than are revoked while streams open. */
const REVOKED_KEYS_KEPT = 10_000
const REPLAY_LIMIT = 1000

/** What a stream subscriber sends to: returns false when it cannot keep up (it is then dropped). */
export type StreamSink = (event: DomainEvent) => boolean
/** Ends a subscriber's stream from our side, saying why (its key was revoked). */
export type StreamEnd = (reason: string) => void

/**
 * The live event stream behind the WebSocket and SSE endpoints: short-lived tickets for
 * browsers, replay from the store after a resume cursor, then live events from the bus,
 * each filtered to what the caller's key may see.
 */
export class EventStreamService {
  private readonly deps: {
    events: EventsRepository
    bus: EventBus
    now?: () => number
    /**
     * The event retention's horizon: events created before it may have been pruned (see
     * EventRetention.horizon); undefined while everything is kept.
     */
    horizon?: () => number | undefined
  }
  private readonly tickets = new Map<string, { principal: Principal; expiresAt: number }>()
  /** open streams by API key: a revoked key's are ended */
  private readonly streams = new Map<string, Set<StreamEnd>>()
  /** keys revoked while this process ran: one still opening a stream when it was is refused */
  private readonly revokedKeys = new Set<string>()

  constructor(deps: EventStreamService['deps']) {
    this.deps = deps
  }

  /** A single-use ticket for clients that cannot send headers (browsers' WebSocket). */
  issueTicket(principal: Principal): { ticket: string; expiresAt: number } {
    const now = this.now()
    for (const [ticket, entry] of this.tickets) if (entry.expiresAt < now) this.tickets.delete(ticket)
    const ticket = `tkt_${randomBytes(24).toString('base64url')}`
    const expiresAt = now + TICKET_TTL_MS
    this.tickets.set(ticket, { principal, expiresAt })
    return { ticket, expiresAt }
  }

  redeemTicket(ticket: string): Principal {
    const entry = this.tickets.get(ticket)
    this.tickets.delete(ticket)
    if (!entry || entry.expiresAt < this.now())
      throw new AppError('unauthorized', 'unknown or expired stream ticket')
    return entry.principal
  }

  /**
   * A revoked key's tickets are void and its open streams end at once, as its requests are
   * refused at once (ApiKeysService.revoke).
   */
  revoked(keyId: string): void {
    this.revokedKeys.add(keyId)
    if (this.revokedKeys.size > REVOKED_KEYS_KEPT)
      this.revokedKeys.delete(this.revokedKeys.values().next().value as string)
    for (const [ticket, entry] of this.tickets)
      if (entry.principal.keyId === keyId) this.tickets.delete(ticket)
    const ends = this.streams.get(keyId)
    this.streams.delete(keyId)
    for (const end of ends ?? []) end('the API key was revoked')
  }

  /**
   * Throws the error `subscribe` would for a resume cursor it cannot honour: a transport
   * that must answer before the stream begins (SSE's status line) asks first.
   */
  async checkCursor(principal: Principal, after: string): Promise<EventRecord> {
    const cursor = await this.deps.events.getById(principal.organizationId, after)
    const problem = this.cursorProblem(cursor)
    if (!cursor || problem)
      throw expiredCursor(after, problem ?? 'not in the event log: pruned, or never existed')
    return cursor
  }

  /**
   * Replays what was missed after `after` (an event id), then follows the bus. Live events
   * that arrive during the replay are held and sent after it, without duplicates. `end`
   * is called (and the subscription closed) should the stream have to end from our side.
   */
  async subscribe(
    principal: Principal,
    filter: EventFilter,
    sink: StreamSink,
    after?: string,
    end?: StreamEnd,
  ): Promise<() => void> {
    if (this.revokedKeys.has(principal.keyId)) throw new AppError('unauthorized', 'the API key was revoked')
    const held: DomainEvent[] = []
    let replaying = true
    let open = true
    const deliver = (event: DomainEvent) => {
      if (!open || !visibleTo(principal, filter, event)) return
      if (!sink(event)) open = false
    }
    const unsubscribe = this.deps.bus.subscribe((event) => (replaying ? held.push(event) : deliver(event)))
    const ends = this.streams.get(principal.keyId) ?? new Set<StreamEnd>()
    this.streams.set(principal.keyId, ends)
    const close = () => {
      open = false
      unsubscribe()
      ends.delete(ended)
      if (ends.size === 0 && this.streams.get(principal.keyId) === ends) this.streams.delete(principal.keyId)
    }
    const ended: StreamEnd = (reason) => {
      close()
      end?.(reason)
    }
    ends.add(ended)
    try {
      if (after) await this.replay(principal, after, deliver, held, () => open)
      replaying = false
      for (const event of held.splice(0)) deliver(event)
    } catch (error) {
      close()
      throw error
    }
    return close
  }

  /**
   * Sends what the store has after `after`, then drops from `held` (live events that came
   * meanwhile) what it sent.
   */
  private async replay(
    principal: Principal,
    after: string,
    deliver: (event: DomainEvent) => void,
    held: DomainEvent[],
    open: () => boolean,
  ): Promise<void> {
    const cursor = await this.checkCursor(principal, after)
    const seen = new Set<string>()
    let position = { createdAt: cursor.createdAt, id: cursor.id }
    for (;;) {
      const page = await this.deps.events.listAfter(principal.organizationId, position, {
        sessionIds: principal.sessionIds ?? undefined,
        limit: REPLAY_LIMIT,
      })
      for (const record of page) {
        seen.add(record.id)
        deliver(fromStored(record))
      }
      const last = page.at(-1)
      if (page.length < REPLAY_LIMIT || !last || !open()) break
      position = { createdAt: last.createdAt, id: last.id }
    }
    const unseen = held.filter((event) => !seen.has(event.id))
    held.splice(0, held.length, ...unseen)
  }

  /**
   * A cursor older than the retention horizon is refused even while it is still stored:
   * an event a webhook delivery still owes outlives the window, but the events after it
   * may already be gone, and a replay must never skip events silently.
   */
  private cursorProblem(cursor: EventRecord | undefined): string | undefined {
    const horizon = this.deps.horizon?.()
    if (cursor && horizon !== undefined && cursor.createdAt < horizon) {
      return 'older than the retention window; later events may be pruned'
    }
    return undefined
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now()
  }
}

/**
 * A resume cursor that cannot be honoured. The stream does not fall back to the oldest
 * event it still has: a consumer resuming after a gap must hear about the gap.
 */
function expiredCursor(after: string, why: string): AppError {
  return invalidRequest(
    `after: cursor ${after} expired (${why}); reconnect without after and catch up from GET /api/v1/events`,
    [{ path: 'querystring.after', message: `expired cursor: ${why}` }],
  )
}
