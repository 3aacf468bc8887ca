export interface CircuitBreakerOptions {
  /** consecutive failures that open the circuit */
  failureThreshold: number
  /** how long an open circuit waits before letting one probe through */
  cooldownMs: number
}

interface Circuit {
  failures: number
  openedAt: number | null
  probing: boolean
}

/**
 * One circuit per endpoint, in memory: a restart closes every circuit, which costs at
 * most one more failed try per dead endpoint. Closed → (N consecutive failures) → open →
 * (cooldown) → half-open, where exactly one delivery goes through as a probe; its success
 * closes the circuit, its failure opens it for another cooldown. While open, deliveries
 * are not tried at all, so their retry budget is not spent on a receiver known to be down.
 */
export class CircuitBreaker {
  private readonly circuits = new Map<string, Circuit>()
  private readonly options: CircuitBreakerOptions

  constructor(options: Partial<CircuitBreakerOptions> = {}) {
    this.options = { failureThreshold: 5, cooldownMs: 30_000, ...options }
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

  private isBlocked(circuit: Circuit, now: number): boolean {
    if (circuit.openedAt === null) return false
    return circuit.probing || now - circuit.openedAt < this.options.cooldownMs
  }

  /**
   * Whether one more delivery to `key` may go now. Admitting into a half-open circuit takes
   * its single probe slot; give it back with `cancel` if the delivery is not sent after all.
   */
  admit(key: string, now: number): boolean {
    const circuit = this.circuits.get(key)
    if (!circuit || circuit.openedAt === null) return true
    if (circuit.probing || now - circuit.openedAt < this.options.cooldownMs) return false
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
    const circuit = this.circuits.get(key) ?? { failures: 0, openedAt: null, probing: false }
    circuit.failures += 1
    if (circuit.probing || circuit.failures >= this.options.failureThreshold) {
      circuit.openedAt = now
      circuit.probing = false
    }
    this.circuits.set(key, circuit)
  }

  state(key: string, now: number): 'closed' | 'open' | 'half-open' {
    const circuit = this.circuits.get(key)
    if (!circuit || circuit.openedAt === null) return 'closed'
    return circuit.probing || now - circuit.openedAt >= this.options.cooldownMs ? 'half-open' : 'open'
  }
}
