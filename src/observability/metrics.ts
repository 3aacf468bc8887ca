import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { SESSION_STATUSES, type SessionStatus } from '../domain/session-status.ts'

/** wagate's Prometheus metrics, in their own registry (no global state between app instances). */
export class Metrics {
  readonly registry = new Registry()
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>
  readonly reconnects: Counter
  private readonly sessions: Gauge<'status'>

  constructor(countSessionsByStatus: () => Promise<Partial<Record<SessionStatus, number>>>) {
    this.httpDuration = new Histogram({
      name: 'wagate_http_request_duration_seconds',
      help: 'HTTP request latency by route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    })
    this.reconnects = new Counter({
      name: 'wagate_session_reconnects_total',
      help: 'Reconnects after a lost connection',
      registers: [this.registry],
    })
    this.sessions = new Gauge({
      name: 'wagate_sessions',
      help: 'Sessions by status',
      labelNames: ['status'],
      registers: [this.registry],
      collect: async () => {
        const counts = await countSessionsByStatus()
        for (const status of SESSION_STATUSES) this.sessions.set({ status }, counts[status] ?? 0)
      },
    })
  }
}
