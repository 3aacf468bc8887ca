import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { ClaimedDelivery, WebhookDeliveriesRepository } from '../store/webhook-deliveries.repository.ts'
import type { WebhooksRepository } from '../store/webhooks.repository.ts'
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitStatus } from './circuit-breaker.ts'
import { givenUp, handedBack, judge, SESSION_GONE_MS, SESSION_GONE_REASON } from './delivery-outcome.ts'
import { OpenCircuitWalks } from './open-circuit-walks.ts'
import type { DeliveryHandoff } from './outbox.ts'
import type { WebhookSender } from './sender.ts'
import { type FinishedDelivery, StoredOutcomes } from './stored-outcomes.ts'
import type { AttemptRecord } from './webhook.types.ts'

export interface DeliveryWorkerOptions {
  webhooks: WebhooksRepository
  deliveries: WebhookDeliveriesRepository
  sender: WebhookSender
  logger?: Logger
  /** the clock deliveries are scheduled by; tests move it by hand */
  now?: () => number
  /** [0, 1), for retry jitter */
  random?: () => number
  /** how often to look for due deliveries when nothing wakes the worker */
  pollIntervalMs?: number
  /**
   * requests the HTTP client sends at once, not counting those out longer than its
   * `slowAfterMs`; it holds up to SENDS_AHEAD times as many per endpoint, ready
   */
  concurrency?: number
  /** how long a claim holds; must outlast a request (the sender's timeout) */
  leaseMs?: number
  /** deliveries held at most, handed over ones included (default HANDOFF_CAPACITY; never below the claim window) */
  handoffCapacity?: number
  circuit?: Partial<CircuitBreakerOptions>
}

/** Why a delivery whose body was its event's wire form is given up once that event is gone. */
const EVENT_GONE_REASON = 'the event it carries is no longer stored (deleted with its session)'

/** While busy, how long an outcome may wait to be stored while a batch gathers (an ordered queue waits on it). */
const SETTLE_DELAY_MS = 10
/**
 * Deliveries handed over at enqueue that the worker takes while it holds fewer than this
 * (waiting or in flight, claimed ones counted); claims fill a window of their own (twice the
 * concurrency), beside it. A burst recorded faster
 * than it is sent waits in memory, leased, rather than costing a claim query per batch: a
 * few MiB (events are ~1 KiB; bodies over `HANDOFF_MAX_BODY_LENGTH` wait for a claim, so
 * never more than 32 MiB). The price of holding more: after a crash, what was held is sent
 * again only when its lease ends (the request timeout plus a minute) — a graceful stop hands
 * it all back at once.
 */
const HANDOFF_CAPACITY = 2048
const HANDOFF_MAX_BODY_LENGTH = 8 * 1024
/**
 * Requests to one endpoint handed to the HTTP client at once, per request it sends at once
 * (`concurrency`). It sends them as connections free up, without a round trip to this
 * thread, so a free connection does not wait for the event loop to come back from a commit
 * or a garbage collection (a few to 30 ms under load) to be given its next request.
 * Interleaved runs of 20,000 events recorded live by 32 producers (2026-12-05): 10.4k →
 * 12.2k events/s, the median of five pairs (+9 to +47 %); 8 instead of 4 did no better.
 * Per endpoint, not in all: an endpoint's requests beyond it wait here, and never keep
 * another endpoint's from the HTTP client.
 */
const SENDS_AHEAD = 4
/**
 * What a request's wait for a connection must leave of its lease beyond its timeout: the
 * timeout's timer may run a second late, and the outcome has a thread to cross and a step to
 * be stored in (never more than half the lease's slack, for the short leases of tests).
 */
const LEASE_MARGIN_MS = 5_000

/** A leased delivery, waiting for a slot or being sent. */
interface Lease {
  delivery: ClaimedDelivery
  token: string
  /** admitted as its half-open circuit's one probe */
  probe: boolean
  /** found by a claim, not handed over at enqueue */
  claimed: boolean
}

/** What the worker holds for one endpoint: its share of each limit is counted here. */
interface EndpointLoad {
  key: string
  /** leased deliveries not finished: waiting, parked or being sent */
  held: number
  /** of those, found by a claim */
  claimed: number
  /** of those, handed to the sender */
  sending: number
  /** waiting while the endpoint has its share with the sender already, in due order (see `park`) */
  parked: Lease[]
}

/**
 * The read side of the outbox: claims due deliveries with a lease, sends each, records
 * every attempt and schedules the next per the endpoint's retry policy. The rows are the
 * truth — a worker that dies mid-request leaves a lease that expires, and the delivery is
 * tried again (at least once, never lost).
 *
 * The store is visited in steps, not per delivery: one transaction stores the outcomes of
 * what finished since the last step and claims more. Claims run ahead of the requests (up
 * to `concurrency` deliveries wait, leased, for a slot), so a finished request is followed
 * by the next at once, and a busy worker takes a step only when a good batch has gathered.
 * The HTTP client is handed more than it sends at once (SENDS_AHEAD per endpoint); it
 * holds an endpoint's requests back once one fails, until the worker has seen the failure
 * and lets them go on or takes them back (the circuit opened, the webhook was edited, the
 * worker is stopping).
 * Until its step, a finished delivery is still leased: a crash then means it is sent again
 * once the lease expires, as after a crash mid-request.
 *
 * Fresh deliveries need no claim while the worker has room: the outbox writes them leased
 * to it and hands them over once committed (`DeliveryHandoff`). A claim runs when there may
 * be due rows no one holds — something was enqueued unleased, handed back or replayed; a
 * claimed delivery settled (the next of its ordered queue, the rest of a backlog); a poll
 * interval passed (retries falling due, circuits half-open, leases ended) — and not again
 * once one found fewer than it asked for, until one of those happens anew. Claims fill a
 * window of their own beside what was handed over, and waiting deliveries go out by when
 * they fell due, so neither kind keeps the other waiting.
 *
 * No endpoint keeps another waiting either — a slow receiver, or one with a backlog, only
 * slows down its own deliveries: each endpoint has its share of what the HTTP client is
 * handed (its excess waits here, parked, in due order: what a claim finds goes ahead of
 * fresher deliveries handed over), of the claim window (an endpoint holding half of it is
 * left out of claims while other endpoints may have due rows; one with parked deliveries
 * always is, once there) and of the handoff (one endpoint never takes the last `window` places).
 */
export class DeliveryWorker implements DeliveryHandoff {
  private readonly webhooks: WebhooksRepository
  private readonly deliveries: WebhookDeliveriesRepository
  private readonly sender: WebhookSender
  private readonly logger?: Logger
  private readonly now: () => number
  private readonly random: () => number
  private readonly pollIntervalMs: number
  private readonly concurrency: number
  /** deliveries to one endpoint handed to the sender and not finished, at most */
  private readonly sendsAhead: number
  /** claimed deliveries of one endpoint beyond which claims leave it out while others may have due rows */
  private readonly claimShare: number
  /** handed-over deliveries one endpoint may hold: the rest of the handoff is kept for the others */
  private readonly handoffShare: number
  private readonly leaseMs: number
  /** LEASE_MARGIN_MS, or half of what the lease leaves beyond a request when that is less */
  private readonly leaseMargin: number
  /** claimed deliveries not finished (waiting or in flight) the worker aims to hold */
  private readonly window: number
  /** while busy, the smallest step worth a transaction */
  private readonly batch: number
  /** handed-over deliveries are taken while the worker holds fewer than this (see HANDOFF_CAPACITY) */
  private readonly handoffCapacity: number
  readonly breaker: CircuitBreaker
  /** claimed deliveries waiting for a slot, the longest due first */
  private readonly claimedWaiting: Lease[] = []
  /** deliveries handed over at enqueue, waiting for a slot */
  private readonly handedWaiting: Lease[] = []
  /** per endpoint with anything held */
  private readonly loads = new Map<string, EndpointLoad>()
  /** endpoints with parked deliveries */
  private readonly crowdedOut = new Set<EndpointLoad>()
  /** leased deliveries not finished (waiting, parked or being sent), all endpoints; `claimedHeld` those claimed */
  private holding = 0
  private claimedHeld = 0
  /** when the last claim ran (performance.now): the poll's deadline, which nudges do not move */
  private lastClaimAt = 0
  private readonly inFlight = new Set<Promise<void>>()
  private finished: FinishedDelivery[] = []
  /** when the oldest of `finished` finished (performance.now) */
  private finishedSince = 0
  private running = false
  /** stop() has begun: nothing more is handed to the HTTP client */
  private stopping = false
  private ticking: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private immediate: NodeJS.Immediate | undefined
  private wokenWhileTicking = false
  /** whether a claim may find due rows no one holds */
  private claimable = true
  /**
   * Since when (performance.now) a claim that left out the endpoints over their share found
   * nothing else due: until something new may be due, or a poll interval has passed, claims
   * take those endpoints' rows too. Undefined while other endpoints may have due rows.
   */
  private othersIdleSince: number | undefined
  /** times `claimable` was set: one during a claim keeps it set */
  private wakes = 0
  /** times any endpoint's rows may have fallen due (`mayBeDue`): one during a claim keeps `othersIdleSince` clear */
  private otherWakes = 0
  /** session webhooks that answered 410, and until when nothing is sent to them (see SESSION_GONE_MS) */
  private readonly gone = new Map<string, number>()
  /** what an open circuit does to the rows: moved out of the claims' way, brought forward when it closes early */
  private readonly walks: OpenCircuitWalks
  private readonly outcomes: StoredOutcomes

  constructor(options: DeliveryWorkerOptions) {
    this.webhooks = options.webhooks
    this.deliveries = options.deliveries
    this.sender = options.sender
    this.logger = options.logger
    this.now = options.now ?? Date.now
    this.random = options.random ?? Math.random
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000
    this.concurrency = options.concurrency ?? 32
    this.sendsAhead = this.concurrency * SENDS_AHEAD
    this.leaseMs = options.leaseMs ?? options.sender.requestTimeoutMs + 60_000
    this.leaseMargin = Math.max(
      0,
      Math.min(LEASE_MARGIN_MS, (this.leaseMs - options.sender.requestTimeoutMs) / 2),
    )
    this.window = 2 * this.concurrency
    this.batch = Math.max(1, Math.floor(this.concurrency / 2))
    this.handoffCapacity = Math.max(this.window, options.handoffCapacity ?? HANDOFF_CAPACITY)
    this.claimShare = this.concurrency
    this.handoffShare = Math.max(this.window, this.handoffCapacity - this.window)
    this.breaker = new CircuitBreaker(options.circuit)
    this.walks = new OpenCircuitWalks({
      deliveries: this.deliveries,
      breaker: this.breaker,
      now: this.now,
      logger: this.logger,
      onDue: () => this.mayBeDue({ othersToo: false }),
    })
    this.outcomes = new StoredOutcomes({
      deliveries: this.deliveries,
      webhooks: this.webhooks,
      logger: this.logger,
    })
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.stopping = false
    this.walks.start()
    this.schedule(0)
  }

  /**
   * Stops claiming, hands back what it holds but has not started, waits for the requests in
   * flight (each bounded by the request timeout) and stores every outcome.
   */
  async stop(): Promise<void> {
    this.running = false
    this.stopping = true
    this.walks.stop()
    this.cancelSchedule()
    await this.ticking
    const at = this.now()
    const parked = [...this.crowdedOut].flatMap((load) => load.parked.splice(0))
    this.crowdedOut.clear()
    for (const lease of [...this.claimedWaiting.splice(0), ...this.handedWaiting.splice(0), ...parked]) {
      this.leave(lease)
      this.handBack(lease, at)
    }
    // What the HTTP client holds but has not sent comes back unsent, and is handed back too.
    this.sender.withdraw()
    await Promise.all(this.inFlight)
    await this.flush()
    await this.walks.settled()
    this.stopping = false
    this.walks.start()
  }

  /**
   * Something was enqueued unleased (to `endpointKeys`) or replayed: claim it now instead of
   * at the next poll. Rows of an endpoint that claims leave out anyway (its circuit keeps
   * them out, or it has parked deliveries and its share of the window) wake no one; those of
   * an endpoint at its share of the window, or parked, are its own news, not the others'.
   */
  wake(endpointKeys?: readonly string[]): void {
    if (endpointKeys === undefined) this.mayBeDue()
    else {
      const now = this.now()
      // Parked and at its share: claims leave it out until its parked deliveries have gone.
      const claimable = endpointKeys.filter((key) => {
        const load = this.loads.get(key)
        return !this.breaker.blocks(key, now) && !(load?.parked.length && this.crowded(load))
      })
      if (claimable.length === 0) return
      const othersToo = claimable.some((key) => {
        const load = this.loads.get(key)
        return load === undefined || (!this.crowded(load) && load.parked.length === 0)
      })
      this.mayBeDue({ othersToo })
    }
    this.nudge()
  }

  /**
   * Deliveries to these endpoints were replayed by hand: they are due (now, or when an open
   * circuit lets a probe through), and a session webhook's 410 is taken as answered —
   * whoever replays them says the receiver is back.
   */
  replayed(endpointKeys: readonly string[]): void {
    for (const key of endpointKeys) this.gone.delete(key)
    this.wake()
  }

  offer(now: number): ReturnType<DeliveryHandoff['offer']> {
    if (!this.running) return undefined
    const room = this.handoffCapacity - this.holding
    return room > 0
      ? { token: randomUUID(), lockedUntil: now + this.leaseMs, room, maxBodyLength: HANDOFF_MAX_BODY_LENGTH }
      : undefined
  }

  /**
   * A circuit that is not closed admits its deliveries through the claim, which probes it;
   * an endpoint that holds its share of the handoff leaves the rest to the others.
   */
  takes(endpointKey: string, now: number, takenAlready: number): boolean {
    return (
      this.breaker.state(endpointKey, now) === 'closed' &&
      (this.loads.get(endpointKey)?.held ?? 0) + takenAlready < this.handoffShare
    )
  }

  heldBackUntil(endpointKey: string, now: number): number | undefined {
    return this.breaker.heldBackUntil(endpointKey, now)
  }

  circuitStatus(endpointKey: string): CircuitStatus {
    return this.breaker.status(endpointKey, this.now())
  }

  /** A stopped worker leaves them leased: they fall due again when the lease ends. */
  adopt(deliveries: readonly ClaimedDelivery[]): void {
    if (!this.running) return
    for (const delivery of deliveries) {
      const lease = { delivery, token: delivery.leaseToken ?? '', probe: false, claimed: false }
      this.enter(lease)
      this.handedWaiting.push(lease)
    }
    this.pump()
  }

  /** A lease the worker now holds: counted against its endpoint's shares. */
  private enter(lease: Lease): void {
    const key = lease.delivery.endpointKey
    let load = this.loads.get(key)
    if (!load) {
      load = { key, held: 0, claimed: 0, sending: 0, parked: [] }
      this.loads.set(key, load)
    }
    load.held++
    this.holding++
    if (lease.claimed) {
      load.claimed++
      this.claimedHeld++
    }
  }

  /** A lease finished with, sent or not. */
  private leave(lease: Lease): void {
    const load = this.loads.get(lease.delivery.endpointKey)
    if (!load) return
    load.held--
    this.holding--
    if (lease.claimed) {
      load.claimed--
      this.claimedHeld--
    }
    if (load.held === 0) this.loads.delete(load.key)
  }

  /** Whether an endpoint holds its share of the claim window: claims leave it out while others may have due rows. */
  private crowded(load: EndpointLoad): boolean {
    return load.claimed >= this.claimShare
  }

  /** A claim may find due rows no one holds: of any endpoint, or (`othersToo: false`) of one the worker holds already. */
  private mayBeDue({ othersToo } = { othersToo: true }): void {
    this.claimable = true
    this.wakes++
    if (!othersToo) return
    this.othersIdleSince = undefined
    this.otherWakes++
  }

  /** Something finished: store it, and fill the room it left, soon. */
  private nudge(): void {
    if (!this.running) return
    if (this.ticking) {
      this.wokenWhileTicking = true
      return
    }
    if (this.immediate) return
    this.cancelSchedule()
    this.schedule(0)
  }

  /** One claim, every claimed delivery sent and its outcome stored; how many there were. For tests and tools. */
  async runOnce(): Promise<number> {
    this.mayBeDue()
    const leases = await this.step(this.concurrency - this.inFlight.size)
    await Promise.all(leases.map((lease) => this.send(lease)))
    await this.flush()
    await this.walks.settled()
    return leases.length
  }

  /**
   * Delay 0 runs after the I/O callbacks of this loop turn (setImmediate), so every
   * response that arrived in it is settled by the same step.
   */
  private schedule(delayMs: number): void {
    // The idle poll; a busy worker's poll is the deadline in tick().
    const poll = delayMs === this.pollIntervalMs
    const run = () => {
      this.timer = undefined
      this.immediate = undefined
      if (poll) this.mayBeDue()
      this.ticking = this.tick(delayMs > 0).finally(() => {
        // Cleared before deciding what next, so a wake from here on schedules at once.
        this.ticking = undefined
        if (!this.running) return
        const again = this.wokenWhileTicking
        this.wokenWhileTicking = false
        this.schedule(again ? 0 : this.finished.length > 0 ? SETTLE_DELAY_MS : this.pollIntervalMs)
      })
    }
    if (delayMs === 0) this.immediate = setImmediate(run)
    else this.timer = setTimeout(run, delayMs)
  }

  private cancelSchedule(): void {
    clearTimeout(this.timer)
    clearImmediate(this.immediate)
    this.timer = undefined
    this.immediate = undefined
  }

  /** `timed`: a timer's tick (the poll, or an outcome waited long enough), which always takes a step. */
  private async tick(timed: boolean): Promise<void> {
    try {
      // The poll's due, however busy: retries falling due, circuits half-open, leases ended.
      if (performance.now() - this.lastClaimAt >= this.pollIntervalMs) this.mayBeDue()
      // Claims have a window of their own, beside what was handed over, so a stream of fresh
      // deliveries never keeps retries, ordered queues or older rows from being claimed.
      const room = this.window - this.claimedHeld
      const waited = this.finished.length > 0 && performance.now() - this.finishedSince >= SETTLE_DELAY_MS
      const claimWorth = this.claimable && (this.holding === 0 || room >= this.batch)
      // Something to claim and room for it, a batch of outcomes, or an outcome kept waiting:
      // a step. Otherwise the requests in flight nudge the worker again as they finish.
      if (timed || claimWorth || this.finished.length >= this.batch || waited) {
        this.claimedWaiting.push(...(await this.step(this.claimable ? room : 0)))
        this.pump()
      }
    } catch (error) {
      this.logger?.error({ err: error }, 'claiming webhook deliveries failed')
    }
  }

  /**
   * Hands waiting deliveries to the sender, the longest due first, each while its endpoint
   * has fewer than `sendsAhead` there; the rest are parked, per endpoint, and go first once
   * it has room (they were next in line).
   */
  private pump(): void {
    if (!this.running) return
    for (const load of this.crowdedOut) {
      while (load.parked.length > 0 && load.sending < this.sendsAhead) {
        void this.send(load.parked.shift() as Lease)
      }
      if (load.parked.length === 0) {
        this.crowdedOut.delete(load)
        // Claims left it out while it was parked: what it has waiting for one may be claimed now.
        this.mayBeDue({ othersToo: false })
      }
    }
    for (let lease = this.nextWaiting(); lease; lease = this.nextWaiting()) {
      const load = this.loads.get(lease.delivery.endpointKey)
      if (!load || (load.parked.length === 0 && load.sending < this.sendsAhead)) {
        void this.send(lease)
        continue
      }
      park(load.parked, lease)
      this.crowdedOut.add(load)
    }
  }

  /**
   * The head of the two queues that fell due first (each is in that order already): a claim
   * backlog and a stream of fresh deliveries take turns by age, neither starving the other.
   */
  private nextWaiting(): Lease | undefined {
    const claimed = this.claimedWaiting[0]?.delivery
    const handed = this.handedWaiting[0]?.delivery
    if (!claimed || !handed) return (claimed ? this.claimedWaiting : this.handedWaiting).shift()
    const claimedFirst =
      claimed.nextAttemptAt < handed.nextAttemptAt ||
      (claimed.nextAttemptAt === handed.nextAttemptAt && claimed.seq <= handed.seq)
    return (claimedFirst ? this.claimedWaiting : this.handedWaiting).shift()
  }

  /**
   * Stores what finished and claims up to `limit` more, in one transaction. Should that
   * fail, the outcomes are stored one by one and the claim waits for the next step.
   */
  private async step(limit: number): Promise<Lease[]> {
    const settling = this.finished
    this.finished = []
    if (settling.length === 0 && limit <= 0) return []
    const now = this.now()
    const token = randomUUID()
    const probes = new Set<string>()
    const wakes = this.wakes
    const otherWakes = this.otherWakes
    if (
      this.othersIdleSince !== undefined &&
      performance.now() - this.othersIdleSince >= this.pollIntervalMs
    ) {
      this.othersIdleSince = undefined
    }
    // Endpoints over their share of the window are left out, so the rest goes to the others;
    // those with parked deliveries always are, once at their share: what a claim gives them
    // waits with the parked ones (ahead of them, by due time), holding its place in the window.
    const crowded =
      limit > 0 && this.othersIdleSince === undefined
        ? [...this.loads.values()].filter((load) => this.crowded(load)).map((load) => load.key)
        : []
    const parked =
      limit > 0 ? [...this.crowdedOut].filter((load) => this.crowded(load)).map((load) => load.key) : []
    /** what this claim has admitted, per endpoint */
    const taken = new Map<string, number>()
    let kept: Set<string>
    let claimed: ClaimedDelivery[]
    let found: number
    if (limit > 0) this.lastClaimAt = performance.now()
    try {
      ;({ kept, claimed, found } = await this.deliveries.completeAndClaim(settling, {
        now,
        limit: Math.max(0, limit),
        leaseMs: this.leaseMs,
        token,
        blockedKeys: [...new Set([...this.breaker.blockedKeys(now), ...parked, ...crowded])],
        admit: (delivery) => {
          const key = delivery.endpointKey
          const load = this.loads.get(key)
          const already = (load?.claimed ?? 0) + (taken.get(key) ?? 0)
          if (load?.parked.length && already >= this.claimShare) return false
          const probing = this.breaker.state(key, now) === 'half-open'
          if (!this.breaker.admit(key, now)) return false
          if (probing) probes.add(key)
          taken.set(key, (taken.get(key) ?? 0) + 1)
          return true
        },
      }))
    } catch (error) {
      for (const key of probes) this.breaker.cancel(key)
      await this.outcomes.afterStored(settling, await this.outcomes.storeOneByOne(settling, error))
      throw error
    }
    if (limit > 0 && found < limit) {
      // Nothing else due: the next claims take the crowded endpoints' rows too, for now.
      if (crowded.length > 0) {
        if (otherWakes === this.otherWakes) this.othersIdleSince = performance.now()
      }
      // Nothing more is due until something is enqueued, handed back, polled or unparked.
      else if (wakes === this.wakes) this.claimable = false
    }
    // Every admitted candidate was leased (the claim chose it under its lock): no probe slot to give back.
    await this.outcomes.afterStored(settling, kept)
    return claimed.map((delivery) => {
      const lease = { delivery, token, probe: probes.has(delivery.endpointKey), claimed: true }
      this.enter(lease)
      return lease
    })
  }

  private send(lease: Lease): Promise<void> {
    const load = this.loads.get(lease.delivery.endpointKey)
    if (load) load.sending++
    const run = this.deliver(lease).finally(() => {
      if (load) load.sending--
      this.leave(lease)
      this.inFlight.delete(run)
      this.pump()
      this.nudge()
    })
    this.inFlight.add(run)
    return run
  }

  private async deliver(lease: Lease): Promise<void> {
    const { delivery } = lease
    /** what a failed request put on its endpoint's other requests, to be lifted whatever happens next */
    let hold: number | undefined
    try {
      const { sendTo: target, body } = delivery
      const startedAt = this.now()
      if (!target || body === null) {
        if (lease.probe) this.breaker.cancel(delivery.endpointKey)
        const reason = target ? EVENT_GONE_REASON : 'the webhook is disabled or deleted'
        this.finish(lease, null, givenUp(delivery, reason, startedAt))
        return
      }
      if (this.isGone(delivery.endpointKey, startedAt)) {
        if (lease.probe) this.breaker.cancel(delivery.endpointKey)
        this.finish(lease, null, givenUp(delivery, SESSION_GONE_REASON, startedAt))
        return
      }
      // Held a while (claimed ahead, or handed over): after a long wait its lease may no longer
      // cover a request; its organization webhook may have been edited, disabled or deleted here
      // since it was handed over (a claim reads it afresh); its circuit may have opened meanwhile.
      const leaseLeft = (delivery.lockedUntil ?? 0) - startedAt
      const stale = () =>
        delivery.webhookId !== null &&
        delivery.webhooksVersion !== undefined &&
        this.webhooks.changedSince(delivery.webhookId, delivery.webhooksVersion)
      const needed = this.sender.requestTimeoutMs + this.leaseMargin
      if (leaseLeft < needed || stale()) {
        this.handBack(lease, startedAt)
        return
      }
      if (!lease.probe) {
        // Admitted into a half-open circuit, it takes the probe slot: it is the probe now.
        const halfOpen = this.breaker.state(delivery.endpointKey, startedAt) === 'half-open'
        if (!this.breaker.admit(delivery.endpointKey, startedAt)) {
          this.handBack(lease, startedAt)
          return
        }
        lease.probe = halfOpen
      }
      const result = await this.sender.send({
        target,
        eventId: delivery.eventId,
        body,
        endpoint: delivery.endpointKey,
        // Waiting for a connection, then the whole attempt, within the lease.
        maxWaitMs: leaseLeft - needed,
        // A withdraw that went by while the address was checked did not see it.
        stillWanted: () => !this.stopping && this.admitted(lease) && !stale(),
      })
      if ('notSent' in result) {
        this.handBack(lease, this.now())
        return
      }
      hold = result.hold
      const at = this.now()
      const attempt: AttemptRecord = {
        deliveryId: delivery.id,
        number: delivery.attempts + 1,
        // When it was sent: it may have waited for a connection since the worker took it up.
        startedAt: Math.max(startedAt, at - result.durationMs),
        statusCode: result.statusCode,
        durationMs: result.durationMs,
        error: result.error,
        response: result.response,
      }
      const { outcome, healthy } = judge(delivery, target.retries, attempt, at, this.random)
      // Before its others come back from the HTTP client: they are given up, not handed back.
      if (attempt.statusCode === 410 && delivery.webhookId === null) {
        this.gone.set(delivery.endpointKey, at + SESSION_GONE_MS)
      }
      if (healthy) {
        // A request sent before the circuit opened may come back fine while it cools down.
        const deferredTo = this.heldBackUntil(delivery.endpointKey, at)
        this.breaker.onSuccess(delivery.endpointKey)
        if (deferredTo !== undefined) this.bringForward(delivery.endpointKey, deferredTo, at)
      } else {
        this.breaker.onFailure(delivery.endpointKey, at)
        this.walks.opened(delivery.endpointKey, target.retries, at)
      }
      if (hold !== undefined) this.afterFailedAttempt(delivery.endpointKey, hold, attempt, at)
      hold = undefined
      // Its retry cannot go before the circuit lets a probe through either.
      const heldBack = outcome.status === 'pending' ? this.heldBackUntil(delivery.endpointKey, at) : undefined
      this.finish(
        lease,
        attempt,
        heldBack !== undefined && heldBack > outcome.nextAttemptAt
          ? { ...outcome, nextAttemptAt: heldBack }
          : outcome,
      )
    } catch (error) {
      // The lease expires and the delivery is claimed again: nothing is lost. A probe gives
      // its slot back, or the circuit would stay blocked.
      if (lease.probe) this.breaker.cancel(delivery.endpointKey)
      if (hold !== undefined) this.sender.resume(delivery.endpointKey, hold)
      this.outcomes.logOf(delivery).error({ err: error }, 'webhook delivery failed unexpectedly')
    }
  }

  /**
   * The HTTP client holds an endpoint's other requests once one fails: they go on (unless a
   * later failure this worker has not seen yet holds them still), or — when its circuit is
   * open now, or it answered 410 — come back unsent, to be handed back.
   */
  private afterFailedAttempt(endpointKey: string, hold: number, attempt: AttemptRecord, at: number): void {
    if (attempt.statusCode === 410 || this.breaker.state(endpointKey, at) === 'open') {
      this.sender.withdraw(endpointKey, hold)
    } else {
      this.sender.resume(endpointKey, hold)
    }
  }

  /** Whether its circuit still lets the lease's delivery go: closed, or half-open with it as the probe. */
  private admitted(lease: Lease): boolean {
    const state = this.breaker.state(lease.delivery.endpointKey, this.now())
    return state === 'closed' || (lease.probe && state === 'half-open')
  }

  /** An organization webhook was edited or deleted: what waits to be sent to it comes back, to be claimed as it now stands. */
  webhookChanged(webhookId: string): void {
    this.sender.withdraw(webhookId)
  }

  private finish(lease: Lease, attempt: AttemptRecord | null, outcome: FinishedDelivery['outcome']): void {
    const { delivery, token } = lease
    // Where claims are at work (a backlog, retries, ordered queues: the next of which falls
    // due as this one settles), the step that stores this claims again. What may fall due
    // is its own endpoint's: nothing new for the others.
    if (lease.claimed) this.mayBeDue({ othersToo: false })
    if (this.finished.length === 0) this.finishedSince = performance.now()
    this.finished.push({ delivery, id: delivery.id, token, attempt, outcome })
  }

  /** Untried: pending again as it was (or due when its open circuit reopens), instead of held until its lease expires. */
  private handBack(lease: Lease, at: number): void {
    const key = lease.delivery.endpointKey
    // Its own endpoint's row is due again: nothing new for the others.
    this.mayBeDue({ othersToo: false })
    if (lease.probe) this.breaker.cancel(key)
    if (this.isGone(key, at)) {
      this.finish(lease, null, givenUp(lease.delivery, SESSION_GONE_REASON, at))
      return
    }
    this.finish(lease, null, handedBack(lease.delivery, at, this.heldBackUntil(key, at)))
  }

  /** Whether `endpointKey` is a session webhook that answered 410 lately (SESSION_GONE_MS). */
  private isGone(endpointKey: string, at: number): boolean {
    const until = this.gone.get(endpointKey)
    if (until === undefined) return false
    if (at < until) return true
    this.gone.delete(endpointKey)
    return false
  }

  /**
   * A circuit closed before the time its rows were moved to: they are due now — those
   * stored, once the walk under way has stopped (it stops at its next statement), and the
   * outcomes still to be stored.
   */
  private bringForward(endpointKey: string, deferredTo: number, at: number): void {
    for (const one of this.finished) {
      const { outcome } = one
      if (one.delivery.endpointKey !== endpointKey || outcome.status !== 'pending') continue
      if (outcome.nextAttemptAt === deferredTo) one.outcome = { ...outcome, nextAttemptAt: at }
    }
    this.walks.closedEarly(endpointKey, deferredTo, at)
  }

  /** Stores the outcomes of what finished, in one transaction. */
  private async flush(): Promise<void> {
    const batch = this.finished
    this.finished = []
    await this.outcomes.store(batch)
  }
}

/**
 * Into an endpoint's parked queue, in due order: one handed over at enqueue is the freshest
 * (at the end); one a claim found — a retry, an older row — goes ahead of fresher ones.
 */
function park(queue: Lease[], lease: Lease): void {
  if (!lease.claimed) {
    queue.push(lease)
    return
  }
  const { nextAttemptAt, seq } = lease.delivery
  let at = 0
  while (at < queue.length) {
    const other = (queue[at] as Lease).delivery
    if (other.nextAttemptAt > nextAttemptAt || (other.nextAttemptAt === nextAttemptAt && other.seq > seq))
      break
    at++
  }
  queue.splice(at, 0, lease)
}
