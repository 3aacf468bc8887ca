import type { Logger } from 'pino'
import type { IdGenerator } from '../domain/ids.ts'
import type { SecretBox } from '../security/secret-box.ts'
import type { SessionResolver } from '../sessions/session-resolver.ts'
import type { Database } from '../store/db.ts'
import { WebhookDeliveriesRepository } from '../store/webhook-deliveries.repository.ts'
import { WebhooksRepository } from '../store/webhooks.repository.ts'
import type { CircuitBreakerOptions } from './circuit-breaker.ts'
import { DeliveryWorker } from './delivery-worker.ts'
import { UndiciWebhookClient, type WebhookHttpClient } from './http-client.ts'
import { WebhookOutbox } from './outbox.ts'
import { WebhookSender } from './sender.ts'
import { type HostResolver, SsrfGuard } from './ssrf-guard.ts'
import { ThreadedWebhookClient } from './threaded-http-client.ts'
import { WebhookDeliveriesService } from './webhook-deliveries.service.ts'
import { WebhooksService } from './webhooks.service.ts'

export interface WebhookModuleOptions {
  database: Database
  secretBox: SecretBox
  newId: IdGenerator
  /** WEBHOOK_ALLOW_PRIVATE=1: loopback and private targets are allowed (tests, home labs) */
  allowPrivateTargets: boolean
  logger?: Logger
  now?: () => number
  random?: () => number
  /** per-attempt timeout */
  requestTimeoutMs?: number
  pollIntervalMs?: number
  concurrency?: number
  /** how long a claim holds (default: the request timeout plus a minute) */
  leaseMs?: number
  /** deliveries the worker holds at most, handed over at enqueue or claimed */
  handoffCapacity?: number
  circuit?: Partial<CircuitBreakerOptions>
  /** replaces the keep-alive undici client */
  httpClient?: WebhookHttpClient
  /** replaces DNS for the SSRF guard */
  resolve?: HostResolver
  /** resolves the session ids and names of a webhook's `sessionIds` */
  sessions?: SessionResolver
}

/** Everything webhooks are, built once by the composition root. */
export interface WebhookModule {
  webhooks: WebhooksRepository
  deliveries: WebhookDeliveriesRepository
  outbox: WebhookOutbox
  worker: DeliveryWorker
  service: WebhooksService
  /** what was delivered, and replays: organization webhooks' and sessions' own */
  deliveryLog: WebhookDeliveriesService
  guard: SsrfGuard
  /** stops the worker and closes the HTTP client's connections */
  close(): Promise<void>
}

export function createWebhookModule(options: WebhookModuleOptions): WebhookModule {
  const webhooks = new WebhooksRepository(options.database.db, {
    reuseEnabledLists: options.database.dialect === 'sqlite',
  })
  const deliveries = new WebhookDeliveriesRepository(options.database.db, options.database.dialect)
  const guard = new SsrfGuard({ allowPrivateTargets: options.allowPrivateTargets, resolve: options.resolve })
  // A resolver handed in (tests' fake DNS) cannot cross to another thread: such a client stays on this one.
  const client =
    options.httpClient ??
    (options.resolve
      ? new UndiciWebhookClient({
          lookup: guard.lookup(),
          connectTimeoutMs: options.requestTimeoutMs,
          maxInFlight: options.concurrency,
        })
      : new ThreadedWebhookClient({
          allowPrivateTargets: options.allowPrivateTargets,
          connectTimeoutMs: options.requestTimeoutMs,
          maxInFlight: options.concurrency,
        }))
  const sender = new WebhookSender({
    client,
    guard,
    secretBox: options.secretBox,
    timeoutMs: options.requestTimeoutMs,
    now: options.now,
  })
  const worker = new DeliveryWorker({
    webhooks,
    deliveries,
    sender,
    logger: options.logger?.child({ component: 'webhooks' }),
    now: options.now,
    random: options.random,
    pollIntervalMs: options.pollIntervalMs,
    concurrency: options.concurrency,
    leaseMs: options.leaseMs,
    handoffCapacity: options.handoffCapacity,
    circuit: options.circuit,
  })
  const outbox = new WebhookOutbox({
    webhooks,
    deliveries,
    newId: options.newId,
    now: options.now,
    handoff: worker,
  })
  const service = new WebhooksService({
    webhooks,
    guard,
    sender,
    secretBox: options.secretBox,
    newId: options.newId,
    now: options.now,
    onChanged: (webhookId) => worker.webhookChanged(webhookId),
    // An organization webhook's endpoint key is its id.
    circuitOf: (webhookId) => worker.circuitStatus(webhookId),
    sessions: options.sessions,
  })
  const deliveryLog = new WebhookDeliveriesService({
    webhooks,
    deliveries,
    now: options.now,
    onReplay: (endpointKeys) => worker.replayed(endpointKeys),
    heldBackUntil: (endpointKey, now) => worker.heldBackUntil(endpointKey, now),
  })
  return {
    webhooks,
    deliveries,
    outbox,
    worker,
    service,
    deliveryLog,
    guard,
    close: async () => {
      await worker.stop()
      await client.close()
    },
  }
}
