import { CompiledQuery, type ExpressionBuilder, type Kysely } from 'kysely'
import type {
  AttemptRecord,
  DeliveryRecord,
  DeliveryStatus,
  WebhookTarget,
} from '../webhooks/webhook.types.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import type { Executor, Tables } from './schema.ts'
import {
  type ClaimedDelivery,
  type ClaimRow,
  deliveryBody,
  EVENT_WIRE_BODY,
  toAttemptRecord,
  toClaimedDelivery,
  toDeliveryRecord,
} from './webhook-delivery-rows.ts'
import {
  attemptParameters,
  DeliveryStatements,
  deliveryParameters,
  settleParameters,
} from './webhook-delivery-sql.ts'

/** A delivery as the outbox writes it: pending, due at `createdAt` (or `dueAt`), never tried. */
export type NewDelivery = Pick<
  DeliveryRecord,
  | 'id'
  | 'organizationId'
  | 'webhookId'
  | 'endpointKey'
  | 'sessionId'
  | 'eventId'
  | 'eventType'
  | 'target'
  | 'orderingKey'
  | 'seq'
  | 'createdAt'
> & {
  /**
   * The exact bytes to send, or null when they are the wire form of the event, which the
   * caller stores in the same transaction: the body is then stored once, with the event.
   */
  body: string | null
  /** leased to a worker at enqueue (handed to it once committed), instead of left for a claim */
  lease?: { token: string; lockedUntil: number }
  /** due later than it is written: its endpoint's circuit is open until then */
  dueAt?: number
}

/** A place in the claim's order of due rows: (next_attempt_at, seq). */
export interface DueCursor {
  due: number
  seq: number
}

/**
 * Whose deliveries: an organization webhook's (its id), or those of a session's own
 * webhooks (its config's), which have no webhook row.
 */
export type DeliveryOwner = string | { sessionId: string }

/**
 * What a replay sets: due at `dueAt` (now, unless its endpoint's circuit is open), its retry
 * budget counted from here, no lease; a session webhook's target as the webhook is now, when
 * given.
 */
const replayed = (
  eb: ExpressionBuilder<Tables, 'webhook_deliveries'>,
  now: number,
  { target, dueAt = now }: ReplayOptions,
) => ({
  status: 'pending',
  next_attempt_at: dueAt,
  replay_offset: eb.ref('attempts'),
  locked_until: null,
  lease_token: null,
  updated_at: now,
  ...(target ? { target: JSON.stringify(target) } : {}),
})

/** How a dead delivery goes again. */
export interface ReplayOptions {
  /** a session webhook's endpoint as its config has it now */
  target?: WebhookTarget
  /** when it is tried (default: now) — later while its endpoint's circuit is open */
  dueAt?: number
}

/** A place in a delivery log's (seq, id) order: seq alone is not unique across processes. */
export interface LogPosition {
  seq: number
  id: string
}

/** A delivery as a walk over the log sees it (`logStretch`). */
export interface LogEntry extends LogPosition {
  endpointKey: string
  status: DeliveryStatus
  createdAt: number
}

const ownedBy = (eb: ExpressionBuilder<Tables, 'webhook_deliveries'>, owner: DeliveryOwner) =>
  typeof owner === 'string'
    ? eb('webhook_id', '=', owner)
    : eb.and([eb('webhook_id', 'is', null), eb('session_id', '=', owner.sessionId)])

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
  admit?: (delivery: ClaimedDelivery) => boolean
}

export type { ClaimedDelivery } from './webhook-delivery-rows.ts'

/** Where a delivery stands after a try (or after being given up without one). */
export interface DeliveryOutcome {
  status: DeliveryStatus
  nextAttemptAt: number
  lastStatusCode: number | null
  lastError: string | null
  deliveredAt: number | null
  at: number
}

/** One settled claim: the try (when there was one) and where the delivery now stands. */
export interface DeliveryCompletion {
  id: string
  /** the claim's lease token: only its holder may record the outcome */
  token: string
  attempt: AttemptRecord | null
  outcome: DeliveryOutcome
}

/** Rows per statement: well under SQLite's bound-parameter limit (32,766) and Postgres' (65,535). */
const INSERT_CHUNK = 500

/**
 * The webhook outbox and its attempt log. The claim is the one query that differs between
 * dialects: Postgres locks candidates with FOR UPDATE SKIP LOCKED, so concurrent workers
 * pass each other instead of queueing; SQLite has one writer at a time already (the
 * transaction takes the write lock before it reads). Either way the rows a claim leases
 * were chosen under a lock its own transaction holds, so a row is never leased twice.
 * The worker's statements are written out in `webhook-delivery-sql.ts`.
 */
export class WebhookDeliveriesRepository {
  private readonly db: Kysely<Tables>
  private readonly dialect: 'sqlite' | 'postgres'
  private readonly statements: DeliveryStatements

  constructor(db: Kysely<Tables>, dialect: 'sqlite' | 'postgres') {
    this.db = db
    this.dialect = dialect
    this.statements = new DeliveryStatements(dialect)
  }

  /**
   * Pass the transaction that stored the event: the event and its deliveries commit together.
   * Returns the ids of leased records that were not written — they met an existing delivery
   * of their event and endpoint, and must not be sent — which is nearly always none.
   */
  async createMany(records: NewDelivery[], trx: Executor = this.db): Promise<Set<string>> {
    const unwritten = new Set<string>()
    for (let i = 0; i < records.length; i += INSERT_CHUNK) {
      const chunk = records.slice(i, i + INSERT_CHUNK)
      const { numAffectedRows } = await trx.executeQuery(
        CompiledQuery.raw(this.statements.insertDeliveries(chunk.length), deliveryParameters(chunk)),
      )
      if (numAffectedRows !== undefined && Number(numAffectedRows) === chunk.length) continue
      // Some met an existing delivery: which of the leased ones were written? (Their ids are new.)
      const leased = chunk.filter((record) => record.lease).map((record) => record.id)
      if (leased.length === 0) continue
      const written = await trx
        .selectFrom('webhook_deliveries')
        .select('id')
        .where('id', 'in', leased)
        .execute()
      const found = new Set(written.map((row) => row.id))
      for (const id of leased) if (!found.has(id)) unwritten.add(id)
    }
    return unwritten
  }

  async getById(organizationId: string, owner: DeliveryOwner, id: string, trx: Executor = this.db) {
    const row = await trx
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where((eb) => ownedBy(eb, owner))
      .where('id', '=', id)
      .executeTakeFirst()
    return row && toDeliveryRecord(row)
  }

  /** The bytes a delivery sends (see `deliveryBody`); undefined when there is no such delivery. */
  async getBody(id: string, trx: Executor = this.db): Promise<string | null | undefined> {
    const row = await trx
      .selectFrom('webhook_deliveries as d')
      .leftJoin('events as e', 'e.id', 'd.event_id')
      .select([
        'd.body',
        'd.event_id',
        'e.type as e_type',
        'e.organization_id as e_organization_id',
        'e.created_at as e_created_at',
        'e.payload as e_payload',
      ])
      .where('d.id', '=', id)
      .executeTakeFirst()
    return row && deliveryBody(row.body, row)
  }

  /**
   * Gives deliveries not yet delivered whose body is their event's wire form (`''`) those
   * bytes, before the event is deleted, so they can still be sent or replayed without it.
   */
  async keepBodies(bodies: readonly { eventId: string; body: string }[], trx: Executor): Promise<void> {
    for (const { eventId, body } of bodies) {
      await trx
        .updateTable('webhook_deliveries')
        .set({ body })
        .where('event_id', '=', eventId)
        .where('body', '=', EVENT_WIRE_BODY)
        .where('status', '<>', 'delivered')
        .execute()
    }
  }

  /** Newest first. */
  async listByWebhook(
    organizationId: string,
    owner: DeliveryOwner,
    query: DeliveryListQuery,
    trx: Executor = this.db,
  ): Promise<DeliveryPage> {
    let select = trx
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('organization_id', '=', organizationId)
      .where((eb) => ownedBy(eb, owner))
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
   * Leases due deliveries, oldest first, each with where it goes now (its organization
   * webhook read in the same transaction). A delivery with an ordering key is a candidate
   * only while no older delivery of its queue is pending, so an ordered queue has at most
   * one delivery in flight and never overtakes a failing head.
   */
  async claimDue(options: ClaimOptions): Promise<ClaimedDelivery[]> {
    return this.db.transaction().execute(async (trx) => (await this.claimIn(trx, options)).claimed)
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
    return (await this.completeMany([{ id, token, attempt, outcome }])).has(id)
  }

  /** `complete` for many deliveries, in one transaction; the ids whose outcome was recorded. */
  async completeMany(completions: readonly DeliveryCompletion[]): Promise<Set<string>> {
    if (completions.length === 0) return new Set()
    return this.db.transaction().execute((trx) => this.settleIn(trx, completions))
  }

  /**
   * `completeMany`, then `claimDue`, in one transaction: the worker's step. The outcomes
   * are stored before the claim reads, so an ordered queue whose head just settled offers
   * its next delivery at once.
   */
  async completeAndClaim(
    completions: readonly DeliveryCompletion[],
    options: ClaimOptions,
  ): Promise<{ kept: Set<string>; claimed: ClaimedDelivery[]; found: number }> {
    return this.db.transaction().execute(async (trx) => {
      const kept = await this.settleIn(trx, completions)
      const { claimed, found } =
        options.limit > 0 ? await this.claimIn(trx, options) : { claimed: [], found: 0 }
      return { kept, claimed, found }
    })
  }

  /** `found`: the due rows the query returned, before `admit` turned any away. */
  private async claimIn(
    trx: Executor,
    options: ClaimOptions,
  ): Promise<{ claimed: ClaimedDelivery[]; found: number }> {
    const { now, token, blockedKeys } = options
    const { rows } = await trx.executeQuery<ClaimRow>(
      CompiledQuery.raw(this.statements.claim(blockedKeys.length), [now, now, ...blockedKeys, options.limit]),
    )
    const claimed: ClaimedDelivery[] = []
    const built = new Map<string, string>()
    for (const row of rows) {
      const delivery = toClaimedDelivery(row, built)
      if (!options.admit || options.admit(delivery)) claimed.push(delivery)
    }
    if (claimed.length === 0) return { claimed, found: rows.length }
    // By primary key alone: this transaction chose the rows under its lock (see the class).
    const lockedUntil = now + options.leaseMs
    await trx.executeQuery(
      CompiledQuery.raw(this.statements.lease(claimed.length), [
        lockedUntil,
        lockedUntil,
        token,
        ...claimed.map((delivery) => delivery.id),
      ]),
    )
    for (const delivery of claimed) {
      delivery.lockedUntil = lockedUntil
      delivery.leaseToken = token
    }
    return { claimed: claimed.sort((a, b) => a.seq - b.seq), found: rows.length }
  }

  /** Stores outcomes, a few statements for the lot; the ids whose lease still held. */
  private async settleIn(trx: Executor, completions: readonly DeliveryCompletion[]): Promise<Set<string>> {
    const kept = new Set<string>()
    for (let i = 0; i < completions.length; i += INSERT_CHUNK) {
      const chunk = completions.slice(i, i + INSERT_CHUNK)
      const { rows } = await trx.executeQuery<{ id: string }>(
        CompiledQuery.raw(this.statements.settle(chunk.length), settleParameters(chunk)),
      )
      for (const row of rows) kept.add(row.id)
      const attempts = chunk.flatMap((completion) => (completion.attempt ? [completion.attempt] : []))
      if (attempts.length === 0) continue
      await trx.executeQuery(
        CompiledQuery.raw(this.statements.insertAttempts(attempts.length), attemptParameters(attempts)),
      )
    }
    return kept
  }

  /**
   * Gives up every pending, unleased delivery to an endpoint (its receiver said 410 Gone).
   * Rare, so it reads the pending rows through the claim index rather than keep an index of
   * its own that every settled delivery would have to update (migration 0006).
   */
  async killPending(endpointKey: string, reason: string, now: number, trx: Executor = this.db) {
    const result = await trx
      .updateTable('webhook_deliveries')
      .set({ status: 'dead', last_error: reason, updated_at: now })
      .where('endpoint_key', '=', endpointKey)
      .where('status', '=', 'pending')
      .where(unleasedAt(now))
      .executeTakeFirst()
    return Number(result.numUpdatedRows)
  }

  /**
   * An endpoint's circuit opened: its pending deliveries no one holds, due before `until`,
   * are made due then, when the circuit lets a probe through — or, those unchanged since
   * before `giveUpUnchangedSince` (no try, no replay), given up as dead for `giveUpReason`.
   * Out of the claim's range, claims no longer walk past every one of them to find the rows
   * they may take (past 100,000: 14 ms a claim, against 0.2 ms once they are moved).
   *
   * One walk over the claim index, `limit` entries at a time — every endpoint's, so a
   * transaction reads no more than that however many other rows are due — going on `after`
   * where the last call stopped; `next` is undefined once the walk has reached `until`.
   * Each call is one short transaction: on SQLite nothing settles a row between the read and
   * the writes, which go by primary key alone (a condition on status made SQLite read the
   * ids through the claim index, every pending row per statement); on Postgres the writes
   * check again that each row is still pending and no one's.
   */
  async holdBack(
    endpointKey: string,
    options: {
      until: number
      now: number
      giveUpUnchangedSince?: number
      giveUpReason: string
      after?: DueCursor
      limit: number
    },
  ): Promise<{ deferred: number; givenUp: number; next: DueCursor | undefined }> {
    const { until, now, giveUpUnchangedSince, giveUpReason, after, limit } = options
    const postgres = this.dialect === 'postgres'
    return this.db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('webhook_deliveries')
        .select(['id', 'endpoint_key', 'next_attempt_at', 'seq', 'updated_at', 'locked_until'])
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<', until)
        .$if(after !== undefined, (query) =>
          query.where((eb) =>
            eb(eb.refTuple('next_attempt_at', 'seq'), '>', eb.tuple(after?.due ?? 0, after?.seq ?? 0)),
          ),
        )
        .orderBy('next_attempt_at')
        .orderBy('seq')
        .limit(limit)
        .execute()
      const mine = rows.filter(
        (row) =>
          row.endpoint_key === endpointKey && (row.locked_until === null || Number(row.locked_until) <= now),
      )
      const unchanged = (row: (typeof rows)[number]) =>
        giveUpUnchangedSince !== undefined && Number(row.updated_at) < giveUpUnchangedSince
      const idle = mine.filter(unchanged).map((row) => row.id)
      const moving = mine.filter((row) => !unchanged(row)).map((row) => row.id)
      let givenUp = 0
      let deferred = 0
      if (idle.length > 0) {
        const result = await trx
          .updateTable('webhook_deliveries')
          .set({ status: 'dead', last_error: giveUpReason, updated_at: now })
          .where('id', 'in', idle)
          .$if(postgres, (query) =>
            query
              .where('status', '=', 'pending')
              .where(unleasedAt(now))
              .where('updated_at', '<', giveUpUnchangedSince ?? 0),
          )
          .executeTakeFirst()
        givenUp = Number(result.numUpdatedRows)
      }
      if (moving.length > 0) {
        const result = await trx
          .updateTable('webhook_deliveries')
          .set({ next_attempt_at: until })
          .where('id', 'in', moving)
          .$if(postgres, (query) => query.where('status', '=', 'pending').where(unleasedAt(now)))
          .executeTakeFirst()
        deferred = Number(result.numUpdatedRows)
      }
      const last = rows.at(-1)
      const next =
        rows.length < limit || !last
          ? undefined
          : { due: Number(last.next_attempt_at), seq: Number(last.seq) }
      return { deferred, givenUp, next }
    })
  }

  /**
   * A circuit that had opened closed again before `deferredTo` (a request sent before it
   * opened came back fine): what was moved to then is due now instead. Reads the rows at
   * exactly that time, through the claim index.
   */
  async bringForward(endpointKey: string, deferredTo: number, now: number): Promise<number> {
    const result = await this.db
      .updateTable('webhook_deliveries')
      .set({ next_attempt_at: now })
      .where('status', '=', 'pending')
      .where('next_attempt_at', '=', deferredTo)
      .where('endpoint_key', '=', endpointKey)
      .where(unleasedAt(now))
      .executeTakeFirst()
    return Number(result.numUpdatedRows)
  }

  /**
   * Makes a dead delivery due again (`options.dueAt`, default now) with a fresh retry budget;
   * undefined unless it was dead. `options.target`: a session webhook's as it is now, instead
   * of the copy taken at enqueue.
   */
  async replay(
    organizationId: string,
    owner: DeliveryOwner,
    id: string,
    now: number,
    options: ReplayOptions = {},
    trx: Executor = this.db,
  ): Promise<DeliveryRecord | undefined> {
    const row = await trx
      .updateTable('webhook_deliveries')
      .set((eb) => replayed(eb, now, options))
      .where('organization_id', '=', organizationId)
      .where((eb) => ownedBy(eb, owner))
      .where('id', '=', id)
      .where('status', '=', 'dead')
      .returningAll()
      .executeTakeFirst()
    return row && toDeliveryRecord(row)
  }

  /**
   * A stretch of `owner`'s delivery log in (seq, id) order, from seq `from` (or after
   * `after`): what a bulk replay walks, a fixed number of rows at a time whatever their
   * status, so that no statement grows with the log.
   */
  async logStretch(
    organizationId: string,
    owner: DeliveryOwner,
    stretch: { from: number; after?: LogPosition; limit: number },
    trx: Executor = this.db,
  ): Promise<LogEntry[]> {
    const { after } = stretch
    let select = trx
      .selectFrom('webhook_deliveries')
      .select(['id', 'seq', 'endpoint_key', 'status', 'created_at'])
      .where('organization_id', '=', organizationId)
      .where((eb) => ownedBy(eb, owner))
      .where('seq', '>=', after?.seq ?? stretch.from)
    if (after) {
      select = select.where((eb) => eb.or([eb('seq', '>', after.seq), eb('id', '>', after.id)]))
    }
    const rows = await select.orderBy('seq').orderBy('id').limit(stretch.limit).execute()
    return rows.map((row) => ({
      id: row.id,
      seq: row.seq,
      endpointKey: row.endpoint_key,
      status: row.status as DeliveryStatus,
      createdAt: row.created_at,
    }))
  }

  /**
   * Makes those of `ids` that are dead due again (`options.dueAt`, default now) with a fresh
   * retry budget — a session webhook's sent as `options.target`, its webhook as it is now;
   * how many were.
   */
  async replayMany(
    ids: readonly string[],
    now: number,
    options: ReplayOptions = {},
    trx: Executor = this.db,
  ): Promise<number> {
    if (ids.length === 0) return 0
    const result = await trx
      .updateTable('webhook_deliveries')
      .set((eb) => replayed(eb, now, options))
      .where('id', 'in', ids)
      .where('status', '=', 'dead')
      .executeTakeFirst()
    return Number(result.numUpdatedRows)
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
          // next_attempt_at is never before created_at (a lease or a retry moves it on,
          // settling sets it to then), so this bound at most delays a row (one given up
          // before a retry it had scheduled); it lets the claim index (status,
          // next_attempt_at, …) find old rows without reading the whole log.
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

/** No lease holds the row at `now`: never leased, or its lease has ended. */
const unleasedAt = (now: number) => (eb: ExpressionBuilder<Tables, 'webhook_deliveries'>) =>
  eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)])
