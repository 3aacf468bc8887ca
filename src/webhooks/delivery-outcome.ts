import type { DeliveryOutcome } from '../store/webhook-deliveries.repository.ts'
import { nextAttemptAt } from './retry-policy.ts'
import type { AttemptRecord, DeliveryRecord, RetrySettings } from './webhook.types.ts'

/* Where a delivery stands after a try, or after being handed back or given up without one. */

export const GONE_REASON = 'the receiver answered 410 Gone; the webhook was disabled'
/**
 * How long a session webhook that answered 410 is not sent to. Its config is the session's
 * (the user's) and has nothing to switch off: the worker remembers the answer instead, and
 * tries again after this, in case the receiver is back.
 */
export const SESSION_GONE_MS = 10 * 60_000
export const SESSION_GONE_REASON =
  'the receiver answered 410 Gone; nothing is sent to this session webhook for 10 minutes'

export interface Judgement {
  outcome: DeliveryOutcome
  /** whether the receiver answered as a working endpoint does (for its circuit breaker) */
  healthy: boolean
}

/** 2xx delivers; 410 gives up on the endpoint; anything else retries per policy until spent. */
export function judge(
  delivery: Pick<DeliveryRecord, 'replayOffset' | 'webhookId'>,
  retries: RetrySettings,
  attempt: AttemptRecord,
  at: number,
  random: () => number,
): Judgement {
  const code = attempt.statusCode
  const base = { lastStatusCode: code, at }
  if (code !== null && code >= 200 && code < 300) {
    return {
      healthy: true,
      outcome: { ...base, status: 'delivered', nextAttemptAt: at, lastError: null, deliveredAt: at },
    }
  }
  if (code === 410) {
    return {
      healthy: true,
      outcome: {
        ...base,
        status: 'dead',
        nextAttemptAt: at,
        lastError: delivery.webhookId === null ? SESSION_GONE_REASON : GONE_REASON,
        deliveredAt: null,
      },
    }
  }
  const lastError = attempt.error ?? `HTTP ${code}`
  const next = nextAttemptAt(retries, attempt.number - delivery.replayOffset, at, random)
  return {
    healthy: false,
    outcome:
      next === null
        ? { ...base, status: 'dead', nextAttemptAt: at, lastError, deliveredAt: null }
        : { ...base, status: 'pending', nextAttemptAt: next, lastError, deliveredAt: null },
  }
}

/** Given up without a try (its webhook is disabled). */
export function givenUp(
  delivery: Pick<DeliveryRecord, 'lastStatusCode'>,
  reason: string,
  at: number,
): DeliveryOutcome {
  return {
    status: 'dead',
    nextAttemptAt: at,
    lastStatusCode: delivery.lastStatusCode,
    lastError: reason,
    deliveredAt: null,
    at,
  }
}

/**
 * Handed back untried (claimed, then held back by its circuit or a stop): pending and due
 * when it was, as it stood before the claim — or at `notBefore`, when its circuit lets a
 * probe through, if that is later.
 */
export function handedBack(
  delivery: Pick<DeliveryRecord, 'nextAttemptAt' | 'lastStatusCode' | 'lastError'>,
  at: number,
  notBefore?: number,
): DeliveryOutcome {
  return {
    status: 'pending',
    nextAttemptAt: Math.max(delivery.nextAttemptAt, notBefore ?? 0),
    lastStatusCode: delivery.lastStatusCode,
    lastError: delivery.lastError,
    deliveredAt: null,
    at,
  }
}
