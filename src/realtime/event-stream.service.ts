import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Principal } from '../accounts/api-key.types.ts'
import { AppError, invalidRequest } from '../domain/errors.ts'
import { type DomainEvent, fromStored } from '../events/catalogue.ts'
import type { EventBus } from '../events/event-bus.ts'
import { type EventFilter, visibleTo } from '../events/event-filter.ts'
import type { EventRecord, EventsRepository } from '../store/events.repository.ts'

/** How long a ticket may wait to open its first stream. */
const TICKET_TTL_MS = 60_000
/** However often its stream reopens, a ticket works this long at most: a leaked one cannot be kept alive. */
const TICKET_LIFETIME_MS = 24 * 60 * 60_000
/**
 * How long after its stream ended a ticket may open it again: a browser's EventSource
 * reconnects to the same URL, ticket included, a few seconds after a stream breaks.
 */
const RECONNECT_GRACE_MS = 60_000
/**
 * Streams a ticket's newer stream may replace within a minute. A client reconnecting after a
 * break replaces its old stream (still held here if the break did not reach us) once per
 * break; two clients sharing a ticket replace each other every few seconds, for good — past
 * this many, the ticket is voided and both are told to get one each.
 */
const REPLACEMENTS_PER_MINUTE = 6
/** Revoked keys remembered: far more than are revoked while streams open. */
const REVOKED_KEYS_KEPT = 10_000
const REPLAY_LIMIT = 1000
/** The longest delay a Node timer takes (about 24.8 days); a key expiring later is looked at again then. */
const LONGEST_TIMER_MS = 2 ** 31 - 1
/**
 * How often the keys of open streams are looked up in the store: a key revoked there behind
 * this process's back (a restore, an operator's SQL; other nodes, in cluster mode) ends its
 * streams within this long.
 */
const KEY_CHECK_INTERVAL_MS = 30_000

/** What a stream subscriber sends to: returns false when it cannot keep up (it is then dropped). */
export type StreamSink = (event: DomainEvent) => boolean
/**
 * Why a stream is ended from our side: its key no longer works (revoked or expired), a
 * newer stream opened with the same ticket replaced it (a client reconnecting before we
 * noticed its old connection was gone), or the gateway is shutting down.
 */
export type StreamEndCause = 'credentials' | 'replaced' | 'shutdown'
/** Ends a subscriber's stream from our side, saying why. */
export type StreamEnd = (reason: string, cause: StreamEndCause) => void

export interface SubscribeOptions {
  /** an event id, or the event `checkCursor` found for it: what was stored after it is replayed first */
  after?: string | EventRecord
  /** called (the subscription already closed) should the stream have to end from our side */
  end?: StreamEnd
  /** the ticket the stream was opened with: it may open the stream again (see `redeemTicket`) */
  ticket?: string
}

interface Ticket {
  principal: Principal
  /** until when it opens a stream while none it opened is open */
  expiresAt: number
  /** after this it opens nothing, its stream open or not */
  lifetimeEnds: number
  /** the stream it opened, while that is open */
  stream?: StreamEnd
  /** the filters of the first stream it opened (`filterKey`): a reopen must ask for the same */
  filters?: string
  /** when its streams were replaced lately (the last minute's) */
  replacements: number[]
}

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
    /**
     * Throws (an `unauthorized` AppError) once a key no longer works — revoked, expired or
     * deleted — as the store has it: ApiKeysService.confirm. Open streams' keys are checked
     * every `keyCheckIntervalMs`, so a revoke made by another process ends them too.
     */
    confirmKey?: (principal: Principal) => Promise<void>
    /** how often open streams' keys are looked up (KEY_CHECK_INTERVAL_MS) */
    keyCheckIntervalMs?: number
    /** where a key check that failed is told */
    logger?: Logger
  }
  private readonly tickets = new Map<string, Ticket>()
  /** open streams by API key, with the key's principal: a revoked key's are ended */
  private readonly streams = new Map<string, { principal: Principal; ends: Set<StreamEnd> }>()
  /** set while streams are open and there is a store to check their keys in */
  private keyCheck: NodeJS.Timeout | undefined
  private checkingKeys = false
  /** keys revoked while this process ran: one still opening a stream when it was is refused */
  private readonly revokedKeys = new Set<string>()
  /** closeAll() has run: the gateway is shutting down, and no stream opens any more */
  private closing = false

  constructor(deps: EventStreamService['deps']) {
    this.deps = deps
  }

  /**
   * A ticket for clients that cannot send headers (browsers' WebSocket and EventSource),
   * valid for TICKET_TTL_MS (never beyond its key's expiry). It opens one stream at a time:
   * the stream it opened can be opened again with it — a reconnect, with the same filters —
   * while that is open and for RECONNECT_GRACE_MS after it ended, for TICKET_LIFETIME_MS at
   * most; the newer stream replaces the older.
   */
  issueTicket(principal: Principal): { ticket: string; expiresAt: number } {
    const now = this.now()
    for (const [ticket, entry] of this.tickets) {
      if (!entry.stream && entry.expiresAt < now) this.tickets.delete(ticket)
    }
    const ticket = `tkt_${randomBytes(24).toString('base64url')}`
    const expiresAt = Math.min(now + TICKET_TTL_MS, principal.expiresAt ?? Number.POSITIVE_INFINITY)
    this.tickets.set(ticket, {
      principal,
      expiresAt,
      lifetimeEnds: now + TICKET_LIFETIME_MS,
      replacements: [],
    })
    return { ticket, expiresAt }
  }

  /** The principal a ticket stands for, while it may open a stream (see `issueTicket`). */
  redeemTicket(ticket: string): Principal {
    const entry = this.tickets.get(ticket)
    const now = this.now()
    const keyExpired = entry?.principal.expiresAt != null && entry.principal.expiresAt <= now
    const over =
      entry !== undefined && (now >= entry.lifetimeEnds || (!entry.stream && entry.expiresAt < now))
    if (!entry || keyExpired || over) {
      if (entry) this.tickets.delete(ticket)
      throw new AppError('unauthorized', 'unknown or expired stream ticket')
    }
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
    const open = this.streams.get(keyId)
    this.streams.delete(keyId)
    for (const end of open?.ends ?? []) end('the API key was revoked', 'credentials')
  }

  /**
   * Ends every open stream, saying the gateway is going away: at shutdown, before the
   * server closes, which would otherwise wait for streaming clients to leave on their own.
   * Clients reconnect — to the gateway once it is back — and resume from their cursor.
   */
  closeAll(): void {
    // One whose request was already past its checks opens no stream now (`subscribe`).
    this.closing = true
    clearInterval(this.keyCheck)
    this.keyCheck = undefined
    const ends = [...this.streams.values()].flatMap((open) => [...open.ends])
    this.streams.clear()
    for (const end of ends) end(SHUTTING_DOWN, 'shutdown')
  }

  /**
   * Throws the error `subscribe` would for a ticket that opened a stream with other filters:
   * a transport that must answer before the stream begins (SSE's status line) asks first —
   * an EventSource reconnects after a stream that ends, but not after a 401.
   */
  checkTicket(ticket: string, filter: EventFilter): void {
    const bound = this.tickets.get(ticket)?.filters
    if (bound !== undefined && bound !== filterKey(filter)) {
      throw new AppError(
        'unauthorized',
        'this ticket reopens only the stream it opened (the same types and sessions)',
      )
    }
  }

  /**
   * Throws the error `subscribe` would for a resume cursor it cannot honour: a transport
   * that must answer before the stream begins (SSE's status line) asks first. `from`: where
   * the cursor came from, which the error names (`Last-Event-ID` when a reconnect sent it).
   */
  async checkCursor(principal: Principal, after: string, from: CursorSource = AFTER): Promise<EventRecord> {
    if (this.closing) throw shuttingDown()
    const cursor = await this.deps.events.getById(principal.organizationId, after)
    const problem = this.cursorProblem(cursor)
    if (!cursor || problem)
      throw expiredCursor(after, problem ?? 'not in the event log: pruned, or never existed', from)
    return cursor
  }

  /**
   * Replays what was missed after `after` (an event id), then follows the bus. Live events
   * that arrive during the replay are held and sent after it, without duplicates. The
   * stream ends from our side when its key is revoked or expires, or when a newer stream
   * opened with its ticket replaces it.
   */
  async subscribe(
    principal: Principal,
    filter: EventFilter,
    sink: StreamSink,
    { after, end, ticket }: SubscribeOptions = {},
  ): Promise<() => void> {
    if (this.revokedKeys.has(principal.keyId)) throw new AppError('unauthorized', 'the API key was revoked')
    if (principal.expiresAt !== null && principal.expiresAt <= this.now()) {
      throw new AppError('unauthorized', 'the API key expired')
    }
    if (this.closing) throw shuttingDown()
    if (ticket !== undefined) this.checkTicket(ticket, filter)
    const filters = filterKey(filter)
    const held: DomainEvent[] = []
    let replaying = true
    let open = true
    let expiry: NodeJS.Timeout | undefined
    const keyStreams = this.streams.get(principal.keyId) ?? { principal, ends: new Set<StreamEnd>() }
    const { ends } = keyStreams
    const close = () => {
      open = false
      unsubscribe()
      clearTimeout(expiry)
      ends.delete(ended)
      if (ends.size === 0 && this.streams.get(principal.keyId) === keyStreams)
        this.streams.delete(principal.keyId)
      if (ticket !== undefined) this.streamClosed(ticket, ended)
    }
    const ended: StreamEnd = (reason, cause) => {
      if (!open) return
      close()
      end?.(reason, cause)
    }
    // A sink that cannot keep up has ended its stream: nothing more is sent to it, or ends it again.
    const deliver = (event: DomainEvent) => {
      if (open && visibleTo(principal, filter, event) && !sink(event)) close()
    }
    const unsubscribe = this.deps.bus.subscribe((event) => (replaying ? held.push(event) : deliver(event)))
    this.streams.set(principal.keyId, keyStreams)
    ends.add(ended)
    this.checkKeysWhileOpen()
    const { expiresAt } = principal
    if (expiresAt !== null) {
      const endAtExpiry = () => {
        const left = expiresAt - this.now()
        if (left <= 0) ended('the API key expired', 'credentials')
        else expiry = setTimeout(endAtExpiry, Math.min(left, LONGEST_TIMER_MS)).unref()
      }
      endAtExpiry()
    }
    try {
      if (after) await this.replay(principal, after, deliver, held, () => open)
      replaying = false
      for (const event of held.splice(0)) deliver(event)
    } catch (error) {
      close()
      throw error
    }
    // Only a stream that got this far replaces the one its ticket opened before.
    if (ticket !== undefined && open) this.streamOpened(ticket, ended, filters)
    return close
  }

  /**
   * A stream opened with `ticket`: one it opened before, still open, is replaced — unless
   * streams of the ticket keep replacing each other (`REPLACEMENTS_PER_MINUTE`), which is two
   * clients sharing it: then the ticket is void and both streams end.
   */
  private streamOpened(ticket: string, stream: StreamEnd, filters: string): void {
    const entry = this.tickets.get(ticket)
    if (!entry) return
    const replaced = entry.stream
    entry.stream = stream
    entry.filters = filters
    if (!replaced) return
    const now = this.now()
    entry.replacements = [...entry.replacements.filter((at) => at > now - 60_000), now]
    if (entry.replacements.length <= REPLACEMENTS_PER_MINUTE) {
      replaced('replaced by a newer stream opened with the same ticket', 'replaced')
      return
    }
    this.tickets.delete(ticket)
    const why = 'this ticket keeps being opened by two clients at once: get a ticket for each client'
    replaced(why, 'credentials')
    stream(why, 'credentials')
  }

  /** The stream `ticket` opened has ended: the ticket may open it again for a while. */
  private streamClosed(ticket: string, stream: StreamEnd): void {
    const entry = this.tickets.get(ticket)
    if (!entry || entry.stream !== stream) return
    entry.stream = undefined
    const graceEnds = Math.min(
      this.now() + RECONNECT_GRACE_MS,
      entry.principal.expiresAt ?? Number.POSITIVE_INFINITY,
    )
    entry.expiresAt = Math.max(entry.expiresAt, graceEnds)
  }

  /**
   * Sends what the store has after `after`, then drops from `held` (live events that came
   * meanwhile) what it sent.
   */
  private async replay(
    principal: Principal,
    after: string | EventRecord,
    deliver: (event: DomainEvent) => void,
    held: DomainEvent[],
    open: () => boolean,
  ): Promise<void> {
    const cursor = typeof after === 'string' ? await this.checkCursor(principal, after) : after
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

  /** Starts the periodic look at open streams' keys, if there is a store to look in and it is not running. */
  private checkKeysWhileOpen(): void {
    const { confirmKey } = this.deps
    if (!confirmKey || this.keyCheck) return
    const every = this.deps.keyCheckIntervalMs ?? KEY_CHECK_INTERVAL_MS
    this.keyCheck = setInterval(() => {
      if (this.streams.size === 0) {
        clearInterval(this.keyCheck)
        this.keyCheck = undefined
        return
      }
      // A slow store holds up the next round rather than have lookups pile up on it.
      if (this.checkingKeys) return
      this.checkingKeys = true
      void this.checkKeys(confirmKey, every).finally(() => {
        this.checkingKeys = false
      })
    }, every).unref()
  }

  /**
   * One round: each open stream's key looked up once. A key the store refuses ends its
   * streams; a store that cannot answer leaves them open (that says nothing about the key),
   * and is logged once for the round. A round that outlasts `deadlineMs` lets the next one go.
   */
  private async checkKeys(confirmKey: (principal: Principal) => Promise<void>, deadlineMs: number) {
    let failed = 0
    let failure: unknown
    const checks = [...this.streams.values()].map(({ principal }) =>
      confirmKey(principal).catch((error: unknown) => {
        if (error instanceof AppError && error.code === 'unauthorized') this.revoked(principal.keyId)
        else [failed, failure] = [failed + 1, error]
      }),
    )
    let deadline: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => {
      deadline = setTimeout(() => resolve('late'), deadlineMs).unref()
    })
    const outcome = await Promise.race([Promise.all(checks), late])
    clearTimeout(deadline)
    if (outcome === 'late')
      this.deps.logger?.warn({ keys: checks.length }, 'checking event stream keys is slow')
    else if (failed > 0)
      this.deps.logger?.warn(
        { err: failure, keys: failed },
        'checking event stream keys failed; their streams stay open',
      )
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now()
  }
}

const SHUTTING_DOWN = 'the gateway is shutting down; reconnect and resume'
const shuttingDown = () => new AppError('unavailable', SHUTTING_DOWN)

/** A stream's filters, the same however they were written (order of types and sessions). */
function filterKey(filter: EventFilter): string {
  return JSON.stringify([[...filter.types].sort(), filter.sessionIds && [...filter.sessionIds].sort()])
}

/** Where a resume cursor came from: the `after` parameter, or a reconnecting EventSource's header. */
export interface CursorSource {
  name: string
  path: string
}
const AFTER: CursorSource = { name: 'after', path: 'querystring.after' }
export const LAST_EVENT_ID: CursorSource = { name: 'Last-Event-ID', path: 'headers.last-event-id' }

/**
 * A resume cursor that cannot be honoured. The stream does not fall back to the oldest
 * event it still has: a consumer resuming after a gap must hear about the gap.
 */
function expiredCursor(after: string, why: string, from: CursorSource): AppError {
  return invalidRequest(
    `${from.name}: cursor ${after} expired (${why}); reconnect without it and catch up from GET /api/v1/events`,
    [{ path: from.path, message: `expired cursor: ${why}` }],
  )
}
