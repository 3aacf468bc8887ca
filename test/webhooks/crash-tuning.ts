/** Timings of the crash test's two processes: short leases, so the restart takes over quickly. */
export const CRASH_TUNING = { requestTimeoutMs: 1_000, leaseMs: 1_500, pollIntervalMs: 20 }
