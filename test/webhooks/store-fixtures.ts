import { randomUUID } from 'node:crypto'
import { after, before } from 'node:test'
import { newId } from '../../src/domain/ids.ts'
import { type Database, migrateToLatest } from '../../src/store/db.ts'
import { OrganizationsRepository } from '../../src/store/organizations.repository.ts'
import {
  type NewDelivery,
  WebhookDeliveriesRepository,
} from '../../src/store/webhook-deliveries.repository.ts'
import { WebhooksRepository } from '../../src/store/webhooks.repository.ts'
import type { WebhookRecord } from '../../src/webhooks/webhook.types.ts'

export interface WebhookStoreContext {
  database: Database
  /** another connection pool to the same database (Postgres; the same handle on SQLite) */
  other: Database
  webhooks: WebhooksRepository
  deliveries: WebhookDeliveriesRepository
  otherDeliveries: WebhookDeliveriesRepository
}

let clock = 1_700_000_000_000
/** Strictly increasing timestamps, shared by every suite of the file. */
export const tick = (): number => ++clock
/** The latest timestamp handed out. */
export const lastTick = (): number => clock

/** Opens and migrates the database before the suite, closes it after. */
export function useWebhookStore(open: () => Promise<Database>): WebhookStoreContext {
  const context = {} as WebhookStoreContext
  before(async () => {
    context.database = await open()
    await migrateToLatest(context.database)
    // Postgres: a second pool, as a second worker would have. SQLite: the same handle —
    // node:sqlite waits for a lock synchronously, so two handles in one process would stall
    // each other's transactions; one process, one handle is how the gateway runs it.
    context.other = context.database.dialect === 'postgres' ? await open() : context.database
    context.webhooks = new WebhooksRepository(context.database.db)
    context.deliveries = new WebhookDeliveriesRepository(context.database.db, context.database.dialect)
    context.otherDeliveries = new WebhookDeliveriesRepository(context.other.db, context.other.dialect)
  })
  after(async () => {
    if (context.other !== context.database) await context.other?.close()
    await context.database?.close()
  })
  return context
}

/** Factories over one context: organizations, webhooks, deliveries, claims. */
export function storeFixtures(context: WebhookStoreContext) {
  return {
    organization: async (): Promise<string> => {
      const id = newId('organization')
      await new OrganizationsRepository(context.database.db).create({ id, name: 'Acme', createdAt: tick() })
      return id
    },
    webhook: async (organizationId: string, overrides: Partial<WebhookRecord> = {}) => {
      const at = tick()
      const record: WebhookRecord = {
        id: newId('webhook'),
        organizationId,
        url: 'https://receiver.example/hook',
        description: null,
        events: ['message.*'],
        sessionIds: [],
        secret: 'v1.sealed',
        customHeaders: [{ name: 'X-Tenant', value: 'acme' }],
        signatureScheme: 'standard',
        retries: { policy: 'linear', delaySeconds: 3, attempts: 4 },
        ordered: false,
        enabled: true,
        disabledReason: null,
        createdAt: at,
        updatedAt: at,
        ...overrides,
      }
      await context.webhooks.create(record)
      return record
    },
    delivery: (hook: WebhookRecord, overrides: Partial<NewDelivery> = {}): NewDelivery => {
      const at = tick()
      return {
        id: newId('delivery'),
        organizationId: hook.organizationId,
        webhookId: hook.id,
        endpointKey: hook.id,
        sessionId: 'ses_a',
        eventId: newId('event'),
        eventType: 'message.received',
        body: '{"id":"evt"}',
        target: null,
        orderingKey: null,
        seq: at * 1000,
        createdAt: at,
        ...overrides,
      }
    },
    claim: (now: number, overrides: { blockedKeys?: string[]; limit?: number; token?: string } = {}) =>
      context.deliveries.claimDue({
        now,
        limit: overrides.limit ?? 100,
        leaseMs: 30_000,
        token: overrides.token ?? randomUUID(),
        blockedKeys: overrides.blockedKeys ?? [],
      }),
    settle: (id: string, token: string, status: 'delivered' | 'dead' | 'pending', at: number) =>
      context.deliveries.complete(id, token, null, {
        status,
        nextAttemptAt: at,
        lastStatusCode: null,
        lastError: null,
        deliveredAt: null,
        at,
      }),
  }
}
