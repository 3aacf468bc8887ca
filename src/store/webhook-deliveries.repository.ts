import type { Kysely } from 'kysely'
import type { AttemptRecord, DeliveryRecord, DeliveryStatus } from '../webhooks/webhook.types.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import type { Executor, Tables } from './schema.ts'
import { toAttemptRecord, toDeliveryRecord } from './webhook-delivery-rows.ts'

/** A delivery as the outbox writes it: pending, due at `createdAt`, never tried. */
export type NewDelivery = Pick<
  DeliveryRecord,
  | 'id'
  | 'organizationId'
  | 'webhookId'
  | 'endpointKey'
  | 'sessionId'
  | 'eventId'
  | 'eventType'
  | 'body'
  | 'target'
  | 'orderingKey'
  | 'seq'
  | 'createdAt'
>

export interface DeliveryListQuery {
  status?: DeliveryStatus
  cursor?: string
  limit: number
}

export interface DeliveryPage {
  items: DeliveryRecord[]
  nextCursor: string | null
}

export interface ClaimOptions {
  now: number
  limit: number
  /** how long the claim holds; longer than a request can take */
  leaseMs: number
  /** marks the rows as this claim's: only its holder may record their outcome */
  token: string
  /** endpoints that must not be tried now (open circuits) */
  blockedKeys: string[]
  /** a last say per candidate, oldest first (a half-open circuit admits one) */
  admit?: (delivery: DeliveryRecord) => boolean
}

/** Where a delivery stands after a try (or after being given up without one). */
export interface DeliveryOutcome {
  status: DeliveryStatus
  nextAttemptAt: number
  lastStatusCode: number | null
  lastError: string | null
  deliveredAt: number | null
  at: number
}

/** Rows per insert statement: well under SQLite's bound-parameter limit. */
const INSERT_CHUNK = 500

/**
 * The webhook outbox and its attempt log. The claim is the one query that differs between
 * dialects: Postgres locks candidates with FOR UPDATE SKIP LOCKED, so concurrent workers
 * pass each other instead of queueing; SQLite has one writer at a time already. On both,
 * the lease is taken by a conditional update, so a row is never leased twice.
 */
export class WebhookDeliveriesRepository {
  private readonly db: Kysely<Tables>
  private readonly dialect: 'sqlite' | 'postgres'

  constructor(db: Kysely<Tables>, dialect: 'sqlite' | 'postgres') {
    this.db = db
    this.dialect = dialect
  }

  /** Pass the transaction that stored the event: the event and its deliveries commit together. */
  async createMany(records: NewDelivery[], trx: Executor = this.db): Promise<void> {
    for (let i = 0; i < records.length; i += INSERT_CHUNK) {
      const values = records.slice(i, i + INSERT_CHUNK).map((record) => ({
        id: record.id,
        organization_id: record.organizationId,
        webhook_id: record.webhookId,
        endpoint_key: record.endpointKey,
        session_id: record.sessionId,
        event_id: record.eventId,
        event_type: record.eventType,
        body: record.body,
        target: record.target === null ? null : JSON.stringify(record.target),
        ordering_key: record.orderingKey,
        seq: record.seq,
        status: 'pending',
        attempts: 0,
        replay_offset: 0,
        next_attempt_at: record.createdAt,
        created_at: record.createdAt,
        updated_at: record.createdAt,
      }))
      // The same event enqueued twice for an endpoint is delivered once.
      await trx
        .insertInto('webhook_deliveries')
        .values(values)
        .onConflict((oc) => oc.columns(['event_id', 'endpoint_key']).doNothing())
        .execute()
    }
  }

  async getById(organizationId: string, webhookId: string, id: string, trx: Executor = this.db) {
    const row = await trx
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('webhook_id', '=', webhookId)
      .where('id', '=', id)
      .executeTakeFirst()
    return row && toDeliveryRecord(row)
  }

  /** Newest first. */
  async listByWebhook(
    organizationId: string,
    webhookId: string,
    query: DeliveryListQuery,
    trx: Executor = this.db,
  ): Promise<DeliveryPage> {
    let select = trx
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where('webhook_id', '=', webhookId)
    if (query.status) select = select.where('status', '=', query.status)
    if (query.cursor) {
      const [seq, id] = decodeCursor(query.cursor, ['number', 'string'])
      select = select.where((eb) =>
        eb.or([eb('seq', '<', seq), eb.and([eb('seq', '=', seq), eb('id', '<', id)])]),
      )
    }
    const rows = await select
      .orderBy('seq', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit + 1)
      .execute()
    const items = rows.slice(0, query.limit).map(toDeliveryRecord)
    const last = items.at(-1)
    return { items, nextCursor: rows.length > query.limit && last ? encodeCursor([last.seq, last.id]) : null }
  }

  async listAttempts(deliveryId: string, trx: Executor = this.db): Promise<AttemptRecord[]> {
    const rows = await trx
      .selectFrom('webhook_attempts')
      .selectAll()
      .where('delivery_id', '=', deliveryId)
      .orderBy('number')
      .execute()
    return rows.map(toAttemptRecord)
  }

  /**
   * Leases due deliveries, oldest first. A delivery with an ordering key is a candidate only
   * while no older delivery of its queue is pending, so an ordered queue has at most one
   * delivery in flight and never overtakes a failing head.
   */
  async claimDue(options: ClaimOptions): Promise<DeliveryRecord[]> {
    const { now, token } = options
    return this.db.transaction().execute(async (trx) => {
      let candidates = trx
        .selectFrom('webhook_deliveries as d')
        .selectAll('d')
        .where('d.status', '=', 'pending')
        .where('d.next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('d.locked_until', 'is', null), eb('d.locked_until', '<=', now)]))
        .where((eb) =>
          eb.or([
            eb('d.ordering_key', 'is', null),
            eb.not(
              eb.exists(
                eb
                  .selectFrom('webhook_deliveries as o')
                  .select('o.id')
                  .whereRef('o.ordering_key', '=', 'd.ordering_key')
                  .where('o.status', '=', 'pending')
                  .whereRef('o.seq', '<', 'd.seq'),
              ),
            ),
          ]),
        )
      if (options.blockedKeys.length > 0) {
        candidates = candidates.where('d.endpoint_key', 'not in', options.blockedKeys)
      }
      candidates = candidates.orderBy('d.next_attempt_at').orderBy('d.seq').limit(options.limit)
      if (this.dialect === 'postgres') candidates = candidates.forUpdate().skipLocked()

      const found = (await candidates.execute()).map(toDeliveryRecord)
      const chosen = options.admit ? found.filter(options.admit) : found
      if (chosen.length === 0) return []
      const leased = await trx
        .updateTable('webhook_deliveries')
        .set({ locked_until: now + options.leaseMs, lease_token: token })
        .where(
          'id',
          'in',
          chosen.map((delivery) => delivery.id),
        )
        .where('status', '=', 'pending')
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
        .returningAll()
        .execute()
      return leased.map(toDeliveryRecord).sort((a, b) => a.seq - b.seq)
    })
  }

  /**
   * Records a try (when there was one) and where the delivery now stands, and releases the
   * lease. The delivery changes only while `token` still holds the lease; the attempt is
   * recorded either way, since it happened. False when the lease had been lost.
   */
  async complete(
    id: string,
    token: string,
    attempt: AttemptRecord | null,
    outcome: DeliveryOutcome,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('webhook_deliveries')
        .set({
          status: outcome.status,
          next_attempt_at: outcome.nextAttemptAt,
          last_status_code: outcome.lastStatusCode,
          last_error: outcome.lastError,
          delivered_at: outcome.deliveredAt,
          ...(attempt ? { attempts: attempt.number } : {}),
          locked_until: null,
          lease_token: null,
          updated_at: outcome.at,
        })
        .where('id', '=', id)
        .where('lease_token', '=', token)
        .executeTakeFirst()
      if (attempt) {
        await trx
          .insertInto('webhook_attempts')
          .values({
            delivery_id: attempt.deliveryId,
            number: attempt.number,
            started_at: attempt.startedAt,
            duration_ms: attempt.durationMs,
            status_code: attempt.statusCode,
            error: attempt.error,
            response: attempt.response,
          })
          .onConflict((oc) => oc.columns(['delivery_id', 'number']).doNothing())
          .execute()
      }
      return result.numUpdatedRows > 0n
    })
  }

  /** Gives up every pending, unleased delivery to an endpoint (its receiver said 410 Gone). */
  async killPending(endpointKey: string, reason: string, now: number, trx: Executor = this.db) {
    const result = await trx
      .updateTable('webhook_deliveries')
      .set({ status: 'dead', last_error: reason, updated_at: now })
      .where('endpoint_key', '=', endpointKey)
      .where('status', '=', 'pending')
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
      .executeTakeFirst()
    return Number(result.numUpdatedRows)
  }

  /** Makes a dead delivery due now with a fresh retry budget; undefined unless it was dead. */
  async replay(
    organizationId: string,
    webhookId: string,
    id: string,
    now: number,
    trx: Executor = this.db,
  ): Promise<DeliveryRecord | undefined> {
    const row = await trx
      .updateTable('webhook_deliveries')
      .set((eb) => ({
        status: 'pending',
        next_attempt_at: now,
        replay_offset: eb.ref('attempts'),
        locked_until: null,
        lease_token: null,
        updated_at: now,
      }))
      .where('organization_id', '=', organizationId)
      .where('webhook_id', '=', webhookId)
      .where('id', '=', id)
      .where('status', '=', 'dead')
      .returningAll()
      .executeTakeFirst()
    return row && toDeliveryRecord(row)
  }

  /*
   * Retention: the delivery log is kept as long as the events it delivered. A pending
   * delivery (due, retrying or leased) is never deleted here; its event is kept with it.
   */

  /**
   * Deletes the settled (delivered or dead) deliveries of `eventIds`, except for events
   * that still have a pending delivery: those events stay, and so does their whole log.
   * Attempts go with their deliveries (foreign key cascade). Returns how many were deleted.
   */
  async deleteSettledByEvents(eventIds: readonly string[], trx: Executor = this.db): Promise<number> {
    if (eventIds.length === 0) return 0
    const result = await trx
      .deleteFrom('webhook_deliveries')
      .where('event_id', 'in', eventIds)
      .where('status', '<>', 'pending')
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('webhook_deliveries as owed')
              .select('owed.id')
              .whereRef('owed.event_id', '=', 'webhook_deliveries.event_id')
              .where('owed.status', '=', 'pending'),
          ),
        ),
      )
      .executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  /**
   * Deletes up to `limit` settled deliveries created before `cutoff` whose event is no
   * longer stored — a deleted session's (its events went with it), or one replayed and
   * settled after its event was pruned. Returns how many were deleted.
   */
  async deleteSettledOrphans(cutoff: number, limit: number, trx: Executor = this.db): Promise<number> {
    const result = await trx
      .deleteFrom('webhook_deliveries')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('webhook_deliveries as settled')
          .select('settled.id')
          .where('settled.status', 'in', ['delivered', 'dead'])
          // next_attempt_at starts at created_at and only moves on, so this bound at most
          // delays a row (one given up before a retry it had scheduled); it lets the
          // (status, next_attempt_at) index find old rows without reading the whole log.
          .where('settled.next_attempt_at', '<', cutoff)
          .where('settled.created_at', '<', cutoff)
          .where((inner) =>
            inner.not(
              inner.exists(
                inner.selectFrom('events').select('events.id').whereRef('events.id', '=', 'settled.event_id'),
              ),
            ),
          )
          .limit(limit),
      )
      .executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
