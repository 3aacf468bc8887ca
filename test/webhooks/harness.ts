import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Selectable } from 'kysely'
import { newId } from '../../src/domain/ids.ts'
import { sessionConfigSchema } from '../../src/domain/session-config.ts'
import type { DomainEvent, DomainEventType } from '../../src/events/catalogue.ts'
import { SecretBox } from '../../src/security/secret-box.ts'
import { sealConfig } from '../../src/sessions/session-secrets.ts'
import { type Database, migrateToLatest, openDatabase } from '../../src/store/db.ts'
import { EventsRepository } from '../../src/store/events.repository.ts'
import { OrganizationsRepository } from '../../src/store/organizations.repository.ts'
import type { WebhookDeliveriesTable } from '../../src/store/schema.ts'
import type { SessionWebhookConfig } from '../../src/webhooks/subscriptions.ts'
import type { AttemptRecord, WebhookRecord } from '../../src/webhooks/webhook.types.ts'
import {
  createWebhookModule,
  type WebhookModule,
  type WebhookModuleOptions,
} from '../../src/webhooks/webhooks.module.ts'
import type { CreateWebhookInput } from '../../src/webhooks/webhooks.service.ts'

/** A clock tests move by hand: retries are scheduled by it, so no test sleeps through a backoff. */
export class FakeClock {
  private at = 1_700_000_000_000

  now = (): number => this.at

  advance(ms: number): void {
    this.at += ms
  }
}

export interface EventSessionRef {
  id: string
  name: string
  metadata: Record<string, string>
}

export interface Harness {
  database: Database
  module: WebhookModule
  clock: FakeClock
  secretBox: SecretBox
  organizationId: string
  /**
   * Stores the event and enqueues its deliveries in one transaction, then publishes it, as
   * the gateway does; `publish: false` stops after the commit (a process that died there).
   */
  emit(
    type: string,
    options?: {
      session?: EventSessionRef | null
      sessionWebhooks?: SessionWebhookConfig[]
      data?: unknown
      publish?: boolean
    },
  ): Promise<DomainEvent>
  /** `count` events of `type` stored in one transaction, as the recorder's group commit does, then published. */
  emitMany(
    type: string,
    count: number,
    options?: { session?: EventSessionRef | null; data?: (i: number) => unknown },
  ): Promise<DomainEvent[]>
  createWebhook(input: CreateWebhookInput): Promise<WebhookRecord>
  /** every delivery row, in enqueue order */
  rows(): Promise<Selectable<WebhookDeliveriesTable>[]>
  attempts(deliveryId: string): Promise<AttemptRecord[]>
  close(): Promise<void>
}

export const newSession = (name = 'sales'): EventSessionRef => ({
  id: newId('session'),
  name,
  metadata: { team: 'ops' },
})

/** Session webhooks as a session's stored config holds them: validated, HMAC keys sealed. */
export function sessionWebhooks(box: SecretBox, webhooks: unknown[]): SessionWebhookConfig[] {
  return sealConfig(sessionConfigSchema.parse({ webhooks }), box).webhooks
}

/**
 * The webhook module over a fresh SQLite file, with a fake clock and an organization.
 * Private targets are allowed (the receiver is on loopback) unless the options say not.
 */
export async function openHarness(options: Partial<WebhookModuleOptions> = {}): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wagate-webhooks-'))
  const database = await openDatabase({ dataDir })
  await migrateToLatest(database)
  const clock = new FakeClock()
  const secretBox = new SecretBox(randomBytes(32))
  const organizationId = newId('organization')
  await new OrganizationsRepository(database.db).create({
    id: organizationId,
    name: 'Acme',
    createdAt: clock.now(),
  })
  const events = new EventsRepository(database.db)
  /** Stores the events and enqueues their deliveries in one transaction, then publishes them (unless told not to). */
  const store = async (
    list: DomainEvent[],
    sessionWebhooks: SessionWebhookConfig[],
    publish: boolean,
  ): Promise<DomainEvent[]> => {
    await database.db.transaction().execute(async (trx) => {
      await events.append(
        list.map((event) => ({
          id: event.id,
          organizationId,
          sessionId: event.session?.id ?? null,
          type: event.type,
          payload: { session: event.session, data: event.data },
          createdAt: event.timestamp,
        })),
        trx,
      )
      await module.outbox.enqueueDeliveries(list, sessionWebhooks, trx)
    })
    // As the gateway's event bus does once the events are committed.
    if (publish) for (const event of list) module.outbox.published(event)
    return list
  }
  const newEvent = (type: string, session: EventSessionRef | null, data: unknown) =>
    ({
      id: newId('event'),
      type: type as DomainEventType,
      organizationId,
      session,
      timestamp: clock.now(),
      data,
    }) as DomainEvent
  const module = createWebhookModule({
    database,
    secretBox,
    newId,
    allowPrivateTargets: true,
    now: clock.now,
    random: () => 0.5,
    requestTimeoutMs: 2_000,
    ...options,
  })
  return {
    database,
    module,
    clock,
    secretBox,
    organizationId,
    emit: async (type, { session = null, sessionWebhooks = [], data = {}, publish = true } = {}) => {
      const [event] = await store([newEvent(type, session, data)], sessionWebhooks, publish)
      return event as DomainEvent
    },
    emitMany: (type, count, { session = null, data = () => ({}) } = {}) =>
      store(
        Array.from({ length: count }, (_, i) => newEvent(type, session, data(i))),
        [],
        true,
      ),
    createWebhook: async (input) => (await module.service.create(organizationId, input)).webhook,
    rows: () => database.db.selectFrom('webhook_deliveries').selectAll().orderBy('seq').execute(),
    attempts: (deliveryId) => module.deliveries.listAttempts(deliveryId),
    close: async () => {
      await module.close()
      await database.close()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}
