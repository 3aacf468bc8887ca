import type { RetrySettings } from './webhook.types.ts'

/** The issue's defaults, shared with session webhooks' config defaults. */
export const DEFAULT_RETRIES: RetrySettings = { policy: 'exponential', delaySeconds: 2, attempts: 15 }

/** No wait is ever longer than this: an exponential series would otherwise reach days. */
export const MAX_RETRY_DELAY_MS = 60 * 60 * 1000

/** Exponential waits vary by ±20% so endpoints that failed together do not retry together. */
const JITTER = 0.2

/**
 * How long to wait after the `failedTries`-th failed try (1 = the first try failed).
 * constant: d, d, d…; linear: d, 2d, 3d…; exponential: d, 2d, 4d… with jitter. All capped.
 * `random` returns [0, 1); 0.5 means no jitter.
 */
export function retryDelayMs(settings: RetrySettings, failedTries: number, random: () => number): number {
  const base = settings.delaySeconds * 1000
  const n = Math.max(1, failedTries)
  switch (settings.policy) {
    case 'constant':
      return Math.min(base, MAX_RETRY_DELAY_MS)
    case 'linear':
      return Math.min(base * n, MAX_RETRY_DELAY_MS)
    case 'exponential': {
      // 2 ** 40 already exceeds any cap; keeping the exponent small keeps the product finite.
      const raw = base * 2 ** Math.min(n - 1, 40)
      const jittered = raw * (1 - JITTER + 2 * JITTER * random())
      return Math.round(Math.min(jittered, MAX_RETRY_DELAY_MS))
    }
  }
}

/**
 * When the next try is due after a failure, or null when the budget is spent (the
 * delivery is then dead).
 */
export function nextAttemptAt(
  settings: RetrySettings,
  failedTries: number,
  now: number,
  random: () => number,
): number | null {
  if (failedTries >= settings.attempts) return null
  return now + retryDelayMs(settings, failedTries, random)
}

/**
 * The longest a delivery's whole schedule can take: every wait between its tries, each at
 * its longest (jitter included). A delivery kept from its tries longer than this — its
 * endpoint's circuit open all that while — would have spent them all by now.
 */
export function retryScheduleMs(settings: RetrySettings): number {
  let total = 0
  for (let failed = 1; failed < settings.attempts; failed++) {
    total += retryDelayMs(settings, failed, () => 1 - Number.EPSILON)
  }
  return total
}
