/** How fast one session may send: the defaults keep a number clear of WhatsApp's spam limits. */
export interface PacingPolicy {
  enabled: boolean
  messagesPerMinute: number
  /** messages that may go back to back before pacing starts */
  burst: number
  /** up to this much random delay on each paced message, so sends do not look machine-timed */
  jitterMs: number
}

export const DEFAULT_PACING: PacingPolicy = { enabled: true, messagesPerMinute: 20, burst: 5, jitterMs: 1500 }

/**
 * A token bucket per session that hands out send times instead of blocking: each
 * accepted message gets the earliest moment it may go, and the durable queue sends it then.
 * The HTTP request never waits.
 */
export class Pacer {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private readonly random: () => number

  constructor(random: () => number = Math.random) {
    this.random = random
  }

  /** The earliest time (epoch ms) the next message of `sessionId` may be sent. */
  schedule(sessionId: string, policy: PacingPolicy, now: number): number {
    if (!policy.enabled) return now
    const interval = 60_000 / policy.messagesPerMinute
    const bucket = this.buckets.get(sessionId) ?? { tokens: policy.burst, at: now }
    let at = Math.max(now, bucket.at)
    let tokens = Math.min(policy.burst, bucket.tokens + (at - bucket.at) / interval)
    let paced = false
    if (tokens >= 1) {
      tokens -= 1
    } else {
      at += (1 - tokens) * interval
      tokens = 0
      paced = true
    }
    this.buckets.set(sessionId, { tokens, at })
    return Math.round(at + (paced ? this.random() * policy.jitterMs : 0))
  }

  forget(sessionId: string): void {
    this.buckets.delete(sessionId)
  }
}
