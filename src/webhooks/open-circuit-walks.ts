import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { DueCursor, WebhookDeliveriesRepository } from '../store/webhook-deliveries.repository.ts'
import type { CircuitBreaker } from './circuit-breaker.ts'
import { retryScheduleMs } from './retry-policy.ts'
import type { RetrySettings } from './webhook.types.ts'

/**
 * Due rows an opening circuit's walk reads per transaction (any endpoint's), a turn of the
 * event loop between: 100,000 of its own moved in 0.7 s in all; 5 beside another endpoint's
 * 1,000,000 due rows, 2 s in all, never more than 8 ms a transaction (2026-12-05).
 */
const WALK_STEP_ROWS = 500

/** A walk over an endpoint's due rows: to be due `until`, given up past `scheduleMs` of its retry schedule. */
interface Walk {
  until: number
  scheduleMs: number
}

/**
 * The stored side of an open circuit. When an endpoint's circuit opens, its due rows no one
 * holds are made due when it lets a probe through (`holdBack`), a few hundred per statement
 * in one walk, so no claim walks past them meanwhile. The cooldown doubles while probes
 * fail, so a backlog behind a receiver that stays down is moved every few minutes at most.
 * Once the circuit has been open longer than the endpoint's retry schedule lasts (never
 * less than the longest cooldown), rows it has kept from their tries all that while are
 * given up instead, as their tries would have been spent by now: a receiver that stays down
 * does not pile up deliveries, and the events they owe, for good. A circuit that closes
 * early (a late success) has what was moved brought forward.
 */
export class OpenCircuitWalks {
  private readonly deps: {
    deliveries: WebhookDeliveriesRepository
    breaker: CircuitBreaker
    now: () => number
    logger?: Logger
    /** rows of this endpoint were made due now: a claim may find them */
    onDue: (endpointKey: string) => void
  }
  /** endpoints whose rows are to be moved, and to when */
  private readonly walks = new Map<string, Walk>()
  /** the walk under way per endpoint */
  private readonly running = new Map<string, Promise<void>>()
  /** walks and bring-forwards under way: `settled` waits for them */
  private readonly underWay = new Set<Promise<void>>()
  private stopped = false

  constructor(deps: OpenCircuitWalks['deps']) {
    this.deps = deps
  }

  /** The endpoint's circuit is open (or opened again): its rows are moved to when it lets a probe through. */
  opened(endpointKey: string, retries: RetrySettings, at: number): void {
    const until = this.deps.breaker.heldBackUntil(endpointKey, at)
    if (until === undefined) return
    if (this.walks.get(endpointKey)?.until === until) return
    this.walks.set(endpointKey, { until, scheduleMs: retryScheduleMs(retries) })
    // A walk under way starts over with this opening's time at its next statement.
    if (this.running.has(endpointKey)) return
    const run = this.walk(endpointKey).finally(() => {
      this.underWay.delete(run)
      this.running.delete(endpointKey)
    })
    this.underWay.add(run)
    this.running.set(endpointKey, run)
  }

  /**
   * The circuit closed before the time its rows were moved to: those stored are due now,
   * once the walk under way has stopped (it stops at its next statement).
   */
  closedEarly(endpointKey: string, deferredTo: number, at: number): void {
    const walk = this.running.get(endpointKey) ?? Promise.resolve()
    const run = walk
      .then(() => this.deps.deliveries.bringForward(endpointKey, deferredTo, at))
      .then(() => this.deps.onDue(endpointKey))
      .catch((error: unknown) =>
        this.deps.logger?.warn({ err: error, endpoint: endpointKey }, 'bringing deliveries forward failed'),
      )
      .finally(() => this.underWay.delete(run))
    this.underWay.add(run)
  }

  /** Walks stop at their next statement (what is not moved yet stays due, which is safe); until `start`. */
  stop(): void {
    this.stopped = true
  }

  start(): void {
    this.stopped = false
  }

  /** Resolves once the walks and bring-forwards under way have ended. */
  async settled(): Promise<void> {
    await Promise.all(this.underWay)
  }

  private async walk(endpointKey: string): Promise<void> {
    const { deliveries, breaker, now: clock, logger } = this.deps
    let givenUp = 0
    let until = 0
    let after: DueCursor | undefined
    try {
      for (;;) {
        const job = this.walks.get(endpointKey) as Walk
        const now = clock()
        // Closed again meanwhile (a late success): nothing to move any more.
        if (this.stopped || breaker.heldBackUntil(endpointKey, now) === undefined) return
        if (job.until !== until) {
          // Opened again: what was moved to the earlier time is before the new one, so from the start.
          until = job.until
          after = undefined
        }
        const keptFor = Math.max(job.scheduleMs, breaker.longestCooldownMs)
        const openSince = breaker.openSince(endpointKey) ?? now
        const step = await deliveries.holdBack(endpointKey, {
          until,
          now,
          ...(now - openSince >= keptFor ? { giveUpUnchangedSince: now - keptFor } : {}),
          giveUpReason: unreachableFor(keptFor),
          after,
          limit: WALK_STEP_ROWS,
        })
        givenUp += step.givenUp
        after = step.next
        if (after === undefined && this.walks.get(endpointKey) === job) return
        await yieldToEventLoop()
      }
    } catch (error) {
      // They stay due: claims walk past them while the circuit is open, as they would anyway.
      logger?.warn(
        { err: error, endpoint: endpointKey },
        'deferring deliveries behind an open circuit failed',
      )
    } finally {
      this.walks.delete(endpointKey)
      if (givenUp > 0) {
        logger?.warn(
          { endpoint: endpointKey, count: givenUp },
          'webhook deliveries given up: the receiver stayed unreachable longer than their retry schedule',
        )
      }
    }
  }
}

/** Why deliveries kept from their tries by an open circuit for their whole retry schedule are dead. */
function unreachableFor(scheduleMs: number): string {
  const minutes = Math.round(scheduleMs / 60_000)
  const span =
    minutes >= 120
      ? `${Math.round(minutes / 6) / 10} h`
      : minutes >= 2
        ? `${minutes} min`
        : `${Math.round(scheduleMs / 1000)} s`
  return `the receiver stayed unreachable (its circuit open) longer than the retry schedule lasts (${span}); given up without another try`
}
