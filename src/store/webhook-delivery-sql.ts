import type { AttemptRecord } from '../webhooks/webhook.types.ts'
import type { DeliveryCompletion, NewDelivery } from './webhook-deliveries.repository.ts'
import { CLAIM_COLUMNS, EVENT_WIRE_BODY } from './webhook-delivery-rows.ts'

/*
 * The delivery worker's statements — enqueue, claim, lease, settle — run for every
 * delivery, and are written out as SQL: building and compiling them with the query builder
 * cost about as much as running them. Each takes `?` placeholders; the Postgres text
 * numbers them. Their shapes vary only with how many rows they carry.
 */

const DELIVERY_COLUMNS = [
  'id',
  'organization_id',
  'webhook_id',
  'endpoint_key',
  'session_id',
  'event_id',
  'event_type',
  'body',
  'target',
  'ordering_key',
  'seq',
  'status',
  'attempts',
  'replay_offset',
  'next_attempt_at',
  'locked_until',
  'lease_token',
  'created_at',
  'updated_at',
].join(', ')
const ATTEMPT_COLUMNS = 'delivery_id, number, started_at, duration_ms, status_code, error, response'

/** `?, ?, …`: `count` placeholders. */
const marks = (count: number) => Array(count).fill('?').join(', ')
/** `(?, ?, …), (?, ?, …)`: `rows` tuples of `width` placeholders, the first one `first` if given. */
const tuples = (rows: number, width: number, first = `(${marks(width)})`) =>
  [first, ...Array(rows - 1).fill(`(${marks(width)})`)].join(', ')

/** The statement texts of one dialect, each built once per shape. */
export class DeliveryStatements {
  private readonly postgres: boolean
  private readonly texts = new Map<string, string>()

  constructor(dialect: 'sqlite' | 'postgres') {
    this.postgres = dialect === 'postgres'
  }

  /** Pending deliveries, some perhaps leased already; the same event enqueued twice for an endpoint is delivered once. */
  insertDeliveries(rows: number): string {
    return this.text(
      `insert:${rows}`,
      () =>
        `insert into webhook_deliveries (${DELIVERY_COLUMNS}) values ${tuples(rows, 19)}
         on conflict (event_id, endpoint_key) do nothing`,
    )
  }

  /**
   * Due deliveries, oldest first, with their organization webhook's columns; `blocked`
   * endpoint keys left out. Postgres locks what it returns and skips what another claim
   * has locked. Parameters: now, now, …blocked keys, limit.
   */
  claim(blocked: number): string {
    return this.text(
      `claim:${blocked}`,
      () =>
        `select ${CLAIM_COLUMNS}
         from webhook_deliveries d left join webhooks w on w.id = d.webhook_id
           left join events e on e.id = d.event_id
         where d.status = 'pending' and d.next_attempt_at <= ?
           and (d.locked_until is null or d.locked_until <= ?)
           and (d.ordering_key is null or not exists (
             select 1 from webhook_deliveries o
             where o.ordering_key = d.ordering_key and o.status = 'pending' and o.seq < d.seq))
           ${blocked > 0 ? `and d.endpoint_key not in (${marks(blocked)})` : ''}
         order by d.next_attempt_at, d.seq
         limit ?${this.postgres ? ' for update of d skip locked' : ''}`,
    )
  }

  /**
   * Parameters: locked until (twice), token, …ids. By primary key alone (see the repository). The
   * row falls due again when the lease ends: a lost attempt is retried then, and until then
   * the row is out of the claim's index range, which no claim has to step over.
   */
  lease(rows: number): string {
    return this.text(
      `lease:${rows}`,
      () =>
        `update webhook_deliveries set locked_until = ?, next_attempt_at = ?, lease_token = ?
         where id in (${marks(rows)})`,
    )
  }

  /**
   * Many outcomes in one update, joined by id and lease token; returns the ids it changed.
   * VALUES columns are `column1…` on both dialects; the first row's casts give Postgres
   * their types (its parameters are text otherwise). Parameters: `settleParameters`.
   */
  settle(rows: number): string {
    return this.text(
      `settle:${rows}`,
      () =>
        `update webhook_deliveries set
           status = v.column3, next_attempt_at = v.column4, last_status_code = v.column5,
           last_error = v.column6, delivered_at = v.column7,
           attempts = coalesce(v.column8, webhook_deliveries.attempts),
           locked_until = null, lease_token = null, updated_at = v.column9
         from (values ${tuples(
           rows,
           9,
           '(cast(? as text), cast(? as text), cast(? as text), cast(? as bigint), cast(? as integer), ' +
             'cast(? as text), cast(? as bigint), cast(? as integer), cast(? as bigint))',
         )}) as v
         where webhook_deliveries.id = v.column1 and webhook_deliveries.lease_token = v.column2
         returning id`,
    )
  }

  /** Attempts, each recorded once. Parameters: `attemptParameters`. */
  insertAttempts(rows: number): string {
    return this.text(
      `attempts:${rows}`,
      () =>
        `insert into webhook_attempts (${ATTEMPT_COLUMNS}) values ${tuples(rows, 7)}
         on conflict (delivery_id, number) do nothing`,
    )
  }

  private text(shape: string, build: () => string): string {
    let text = this.texts.get(shape)
    if (text === undefined) {
      text = build()
      if (this.postgres) {
        let n = 0
        text = text.replace(/\?/g, () => `$${++n}`)
      }
      this.texts.set(shape, text)
    }
    return text
  }
}

/**
 * A row leased at enqueue is out of the claim's range until its lease ends, as a claimed
 * one is (see `lease`).
 */
export const deliveryParameters = (records: readonly NewDelivery[]): unknown[] =>
  records.flatMap((record) => [
    record.id,
    record.organizationId,
    record.webhookId,
    record.endpointKey,
    record.sessionId,
    record.eventId,
    record.eventType,
    record.body ?? EVENT_WIRE_BODY,
    record.target === null ? null : JSON.stringify(record.target),
    record.orderingKey,
    record.seq,
    'pending',
    0,
    0,
    record.lease?.lockedUntil ?? record.dueAt ?? record.createdAt,
    record.lease?.lockedUntil ?? null,
    record.lease?.token ?? null,
    record.createdAt,
    record.createdAt,
  ])

export const settleParameters = (completions: readonly DeliveryCompletion[]): unknown[] =>
  completions.flatMap(({ id, token, attempt, outcome }) => [
    id,
    token,
    outcome.status,
    outcome.nextAttemptAt,
    outcome.lastStatusCode,
    outcome.lastError,
    outcome.deliveredAt,
    attempt ? attempt.number : null,
    outcome.at,
  ])

export const attemptParameters = (attempts: readonly AttemptRecord[]): unknown[] =>
  attempts.flatMap((attempt) => [
    attempt.deliveryId,
    attempt.number,
    attempt.startedAt,
    attempt.durationMs,
    attempt.statusCode,
    attempt.error,
    attempt.response,
  ])
