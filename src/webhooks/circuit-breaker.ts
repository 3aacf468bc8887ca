/** What an endpoint's circuit is like now, for people: the webhook API shows it. */
export interface CircuitStatus {
  state: 'closed' | 'open' | 'half-open'
  /** failures in a row since the last success (a closed circuit opens at the threshold) */
  consecutiveFailures: number
  /** since when it has been open or half-open without closing */
  openSince: number | null
  /** when an open circuit lets its probe through */
  nextProbeAt: number | null
}

export interface CircuitBreakerOptions {
  /** consecutive failures that open the circuit */
  failureThreshold: number
  /** how long an open circuit waits before letting one probe through; doubled each time the probe fails */
  cooldownMs: number
  /** the longest a run of failed probes makes the cooldown */
  maxCooldownMs: number
}

interface Circuit {
  failures: number
  openedAt: number | null
  probing: boolean
  /** times it opened since it was last closed: the cooldown doubles with each */
  opens: number
  /** when it first opened since it was last closed */
  firstOpenedAt: number | null
}

/**
 * One circuit per endpoint, in memory: a restart closes every circuit, which costs at
 * most one more failed try per dead endpoint. Closed → (N consecutive failures) → open →
 * (cooldown) → half-open, where exactly one delivery goes through as a probe; its success
 * closes the circuit, its failure opens it for another cooldown, twice as long as the last
 * (up to `maxCooldownMs`), so a receiver that stays down is probed less and less often.
 * While open, deliveries are not tried at all, so their retry budget is not spent on a
 * receiver known to be down.
 */
export class CircuitBreaker {
  private readonly circuits = new Map<string, Circuit>()
  private readonly options: CircuitBreakerOptions

  constructor(options: Partial<CircuitBreakerOptions> = {}) {
    this.options = { failureThreshold: 5, cooldownMs: 30_000, maxCooldownMs: 5 * 60_000, ...options }
  }

  /** Endpoints nothing may be sent to now: open and cooling down, or half-open with the probe out. */
  blockedKeys(now: number): string[] {
    const blocked: string[] = []
    for (const [key, circuit] of this.circuits) if (this.isBlocked(circuit, now)) blocked.push(key)
    return blocked
  }

  /** Whether nothing may be sent to `key` now (one of `blockedKeys`). */
  blocks(key: string, now: number): boolean {
    const circuit = this.circuits.get(key)
    return circuit !== undefined && this.isBlocked(circuit, now)
  }

  /** The longest an open circuit waits before its next probe. */
  get longestCooldownMs(): number {
    return Math.max(this.options.cooldownMs, this.options.maxCooldownMs)
  }

  /** Since when the circuit has been open (or half-open) without closing; undefined while closed. */
  openSince(key: string): number | undefined {
    return this.circuits.get(key)?.firstOpenedAt ?? undefined
  }

  /** When an open circuit lets its probe through; undefined unless it is open. */
  reopensAt(key: string): number | undefined {
    const circuit = this.circuits.get(key)
    if (!circuit || circuit.openedAt === null) return undefined
    return circuit.openedAt + this.cooldown(circuit)
  }

  /** When deliveries to `key` may be tried, if not at `now`: its circuit is open until then. */
  heldBackUntil(key: string, now: number): number | undefined {
    const until = this.reopensAt(key)
    return until !== undefined && until > now ? until : undefined
  }

  /**
   * Whether one more delivery to `key` may go now. Admitting into a half-open circuit takes
   * its single probe slot; give it back with `cancel` if the delivery is not sent after all.
   */
  admit(key: string, now: number): boolean {
    const circuit = this.circuits.get(key)
    if (!circuit || circuit.openedAt === null) return true
    if (this.isBlocked(circuit, now)) return false
    circuit.probing = true
    return true
  }

  cancel(key: string): void {
    const circuit = this.circuits.get(key)
    if (circuit) circuit.probing = false
  }

  onSuccess(key: string): void {
    this.circuits.delete(key)
  }

  onFailure(key: string, now: number): void {
    const circuit = this.circuits.get(key) ?? {
      failures: 0,
      openedAt: null,
      probing: false,
      opens: 0,
      firstOpenedAt: null,
    }
    this.circuits.set(key, circuit)
    circuit.failures += 1
    // A request sent before the circuit opened, failing while it cools down, changes nothing.
    if (circuit.openedAt !== null && !circuit.probing && this.isBlocked(circuit, now)) return
    if (circuit.probing || circuit.failures >= this.options.failureThreshold) {
      circuit.openedAt = now
      circuit.firstOpenedAt ??= now
      circuit.probing = false
      circuit.opens += 1
    }
  }

  state(key: string, now: number): 'closed' | 'open' | 'half-open' {
    const circuit = this.circuits.get(key)
    if (!circuit || circuit.openedAt === null) return 'closed'
    return circuit.probing || now - circuit.openedAt >= this.cooldown(circuit) ? 'half-open' : 'open'
  }

  status(key: string, now: number): CircuitStatus {
    const state = this.state(key, now)
    const circuit = this.circuits.get(key)
    return {
      state,
      consecutiveFailures: circuit?.failures ?? 0,
      openSince: circuit?.firstOpenedAt ?? null,
      nextProbeAt: state === 'open' ? (this.reopensAt(key) ?? null) : null,
    }
  }

  private isBlocked(circuit: Circuit, now: number): boolean {
    if (circuit.openedAt === null) return false
    return circuit.probing || now - circuit.openedAt < this.cooldown(circuit)
  }

  private cooldown(circuit: Circuit): number {
    const { cooldownMs } = this.options
    const doubled = cooldownMs * 2 ** Math.min(Math.max(0, circuit.opens - 1), 30)
    return Math.min(doubled, this.longestCooldownMs)
  }
}
