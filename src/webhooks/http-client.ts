import type { LookupFunction } from 'node:net'
import { Agent, type Dispatcher } from 'undici'
import { type RequestSigning, withSignature } from './signing.ts'

export interface WebhookHttpRequest {
  url: string
  /** every header but the signature's */
  headers: Record<string, string>
  body: string
  /** signed just before it is sent, over `body` */
  sign?: RequestSigning
  /**
   * The attempt's timeout: the whole request, from when a connection takes it to the end
   * of what is read of the body (connecting also has the client's `connectTimeoutMs`).
   * Checked on the HTTP client's own timers, so it may fire up to a second late. An
   * AbortSignal.timeout per request (a timer, listeners, a weak reference) made each
   * delivery cost 15–25% more CPU (webhook backlog, 2026-12-05).
   */
  timeoutMs: number
  /**
   * The latest moment it may be sent, on `wallClock()` (comparable between threads); past
   * that it is not sent at all (`NotSentError`). The delivery worker sets it so that the
   * wait and the attempt fit in the lease.
   */
  sendBy?: number
  /**
   * The endpoint it goes to. A request to it that fails (no 2xx) holds the endpoint's
   * other requests until `resume` or `withdraw`: the caller decides whether they go.
   * Requests without one (the API's test sends) go first, beside the `maxInFlight` cap.
   */
  endpoint?: string
}

export interface WebhookHttpResponse {
  status: number
  /** the start of the body, at most `RESPONSE_KEEP_BYTES` */
  body: string
  /** from when a connection took the request to the end of what was read */
  durationMs: number
  /** a failed request to an endpoint: the hold it put on the endpoint's others (see `resume`) */
  hold?: number
}

/** The one thing the sender needs from HTTP; tests may hand in their own. */
export interface WebhookHttpClient {
  post(request: WebhookHttpRequest): Promise<WebhookHttpResponse>
  /**
   * Requests still waiting for a connection — to `endpoint`, or all — are given up unsent
   * (`NotSentError`). With `hold`, the endpoint's hold is lifted too if that is still the
   * latest (as `resume` does); with no endpoint, every hold is.
   */
  withdraw(endpoint?: string, hold?: number): void
  /**
   * Requests to `endpoint`, held since one of its requests failed, may go again — if `hold`
   * (that failure's) is still the latest: a later failure the caller has not seen yet keeps
   * them held.
   */
  resume(endpoint: string, hold: number): void
  close(): Promise<void>
}

/** How much of a response is kept with the attempt. */
export const RESPONSE_KEEP_BYTES = 1024
/** Bodies up to this are drained so the connection goes back to the pool; longer ones end it. */
const RESPONSE_DRAIN_BYTES = 64 * 1024
/** How often requests past their deadline are looked for. */
const SWEEP_INTERVAL_MS = 250
/**
 * A hold no word came for is lifted after this: a failure whose outcome never reached the
 * caller must not stall its endpoint for good (the caller answers within milliseconds).
 */
const HOLD_LIMIT_MS = 30_000

const WAITED_TOO_LONG = 'it waited too long for a connection'
const CLOSED = 'the webhook HTTP client is closed'

/** Epoch milliseconds, sub-millisecond, the same on every thread (`sendBy`). */
export const wallClock = () => performance.timeOrigin + performance.now()

/** A request in flight: its queue, when it was sent, when it must be over, and its handle once undici has started it. */
interface Attempt {
  queue: string
  sentAt: number
  deadline: number
  controller?: Dispatcher.DispatchController
}

/** A request waiting for a connection (or for the client's room). */
interface Waiting {
  input: WebhookHttpRequest
  target: { origin: string; path: string }
  /** its queue: its endpoint, or its origin for a request without one */
  queue: string
  resolve: (response: WebhookHttpResponse) => void
  reject: (error: Error) => void
}

/** Queues whose last send is remembered (`lastSent`): far more than have requests waiting at once. */
const LAST_SENT_KEPT = 10_000

/** Parsed webhook URLs kept: far more than there are endpoints in use. */
const TARGET_CACHE_SIZE = 1_000

/** How long a request may be out before it no longer counts against `maxInFlight`. */
export const SLOW_AFTER_MS = 200
/** Requests out at once, slow ones included: each holds a socket (a file descriptor). */
export const MAX_OUTSTANDING = 512
/**
 * An endpoint with fewer requests out than this, none of its latest slow, is light: it may
 * also take the places kept back from the others — `RESERVE_PER_ORIGIN` more connections to
 * its origin, `RESERVE_IN_ALL` more requests out in all — so a receiver that answers quickly
 * is never left waiting behind slow ones, however many there are, whatever host they share.
 */
const LIGHT_BELOW = 2
const RESERVE_PER_ORIGIN = 4
const RESERVE_IN_ALL = 32

export interface UndiciWebhookClientOptions {
  /** the SSRF guard's socket lookup */
  lookup?: LookupFunction
  /** requests out at once to one endpoint (one origin, for requests without one) */
  connectionsPerEndpoint?: number
  /**
   * requests out at once to one receiver (origin), over every endpoint there; light
   * endpoints may use `RESERVE_PER_ORIGIN` connections more
   */
  connectionsPerOrigin?: number
  /** requests sent at once that are not yet slow (out for less than `slowAfterMs`), over every endpoint */
  maxInFlight?: number
  /** a request out this long is slow: it no longer counts against `maxInFlight` */
  slowAfterMs?: number
  /** requests out at once, slow ones included; light endpoints may use `RESERVE_IN_ALL` more */
  maxOutstanding?: number
  keepAliveTimeoutMs?: number
  /** how long opening a connection may take; the attempt's timeout fits */
  connectTimeoutMs?: number
}

/**
 * POSTs over a keep-alive pool per receiver (undici). Redirects are returned, not followed:
 * a 3xx is a failed attempt, so a receiver cannot bounce us to an address the guard would
 * refuse.
 *
 * Requests wait here, in the order they were posted per endpoint, until there is room for
 * them: undici never queues one itself. Room is counted so that slow receivers cannot take
 * it from quick ones. A request out for `slowAfterMs` no longer counts against
 * `maxInFlight`, only against `maxOutstanding`: however many receivers are slow, a request
 * to a quick one waits at most that long for a place. And the last places of each receiver's
 * connections and of `maxOutstanding` are kept for light endpoints (fewer than
 * `LIGHT_BELOW` out): endpoints with requests piling up at a slow receiver never take them,
 * so a quick endpoint beside them — at the same host, or beside hundreds of slow ones — is
 * sent to at once. When a place frees up, the next request is the head of the endpoint queue
 * with the fewest requests out — on a tie, of the queue that sent least recently: a slow
 * receiver with a backlog gets its share, never the room other receivers are waiting for,
 * and queues take turns. So a request's timeout starts when it is sent — waiting behind a slow
 * receiver's other requests is not held against an attempt — and a caller may post well
 * ahead of what is sent (the delivery worker does: a connection that frees up takes the next
 * request at once, however busy the caller's thread is), bounding each wait with `sendBy`.
 * Ahead of the caller means ahead of its judgement too: once a request to an endpoint fails,
 * the endpoint's others wait until the caller has seen the failure and resumes or withdraws
 * them, so a receiver that went down gets no more than what was already under way.
 */
export class UndiciWebhookClient implements WebhookHttpClient {
  private readonly agent: Agent
  private readonly connectionsPerEndpoint: number
  private readonly connectionsPerOrigin: number
  private readonly maxInFlight: number
  private readonly slowAfterMs: number
  private readonly maxOutstanding: number
  private readonly targets = new Map<string, { origin: string; path: string }>()
  /** requests sent and not yet settled, for the deadline sweep and `maxOutstanding` */
  private readonly attempts = new Set<Attempt>()
  /** those of them out for less than `slowAfterMs`, the earliest sent first: what `maxInFlight` counts */
  private readonly recent = new Set<Attempt>()
  /** set while requests wait for room: fires when the earliest recent request turns slow */
  private slowTimer: NodeJS.Timeout | undefined
  /** waiting requests, a queue per endpoint (per origin for those posted without one), each oldest first */
  private readonly queues = new Map<string, Waiting[]>()
  /** requests sent so far, and when (on that count) each queue last sent, the most recent last */
  private sends = 0
  private readonly lastSent = new Map<string, number>()
  /** set while sendWaiting runs: a request settling inside it asks for another round instead */
  private sending = false
  private sendAgain = false
  /** requests sent and not yet settled, per origin and per queue */
  private readonly sentTo = new Map<string, number>()
  private readonly sentFrom = new Map<string, number>()
  /**
   * Queues one of whose requests was out `slowAfterMs` or longer, until one of them is
   * answered sooner: never light. The most recent last, at most LAST_SENT_KEPT.
   */
  private readonly slowQueues = new Set<string>()
  /** endpoints whose requests wait for `resume` (one of them failed): the latest failure's hold, and when */
  private readonly held = new Map<string, { hold: number; since: number }>()
  private holds = 0
  private sweeper: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined

  constructor(options: UndiciWebhookClientOptions = {}) {
    this.connectionsPerEndpoint = options.connectionsPerEndpoint ?? 16
    this.connectionsPerOrigin = options.connectionsPerOrigin ?? 16
    this.maxInFlight = options.maxInFlight ?? 32
    this.slowAfterMs = options.slowAfterMs ?? SLOW_AFTER_MS
    this.maxOutstanding = options.maxOutstanding ?? MAX_OUTSTANDING
    this.agent = new Agent({
      connections: this.connectionsPerOrigin + RESERVE_PER_ORIGIN,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      connect: {
        timeout: options.connectTimeoutMs ?? 10_000,
        ...(options.lookup ? { lookup: options.lookup } : {}),
      },
    })
  }

  post(input: WebhookHttpRequest): Promise<WebhookHttpResponse> {
    if (this.closing) return Promise.reject(new NotSentError(CLOSED))
    let target: { origin: string; path: string }
    try {
      target = this.targetOf(input.url)
    } catch (error) {
      return Promise.reject(error)
    }
    return new Promise<WebhookHttpResponse>((resolve, reject) => {
      const key = input.endpoint ?? `\u0000${target.origin}`
      const queue = this.queues.get(key) ?? []
      this.queues.set(key, queue)
      queue.push({ input, target, queue: key, resolve, reject })
      this.sweep()
      this.sendWaiting()
    })
  }

  withdraw(endpoint?: string, hold?: number): void {
    if (endpoint === undefined) this.held.clear()
    else if (hold !== undefined && this.held.get(endpoint)?.hold === hold) this.held.delete(endpoint)
    this.giveUp(
      (request) => endpoint === undefined || request.input.endpoint === endpoint,
      'withdrawn before it was sent',
    )
  }

  resume(endpoint: string, hold: number): void {
    if (this.held.get(endpoint)?.hold !== hold) return
    this.held.delete(endpoint)
    this.sendWaiting()
  }

  close(): Promise<void> {
    if (this.closing) return this.closing
    this.giveUp(() => true, CLOSED)
    this.held.clear()
    clearTimeout(this.slowTimer)
    this.slowTimer = undefined
    // The requests out finish first.
    this.closing = this.agent.close()
    return this.closing
  }

  /** Sends waiting requests, the oldest first, while there is room for them. */
  private sendWaiting(): void {
    if (this.sending) {
      this.sendAgain = true
      return
    }
    this.sending = true
    try {
      do {
        this.sendAgain = false
        for (let next = this.nextToSend(); next; next = this.nextToSend()) this.send(next)
      } while (this.sendAgain)
      this.wakeWhenOneTurnsSlow()
    } finally {
      this.sending = false
    }
  }

  /**
   * The next request there is room for: one posted without an endpoint first, whatever
   * else is out; else, while fewer than `maxInFlight` recent ones are, the head of the queue
   * — of an endpoint not held — with the fewest requests out, the one served least recently
   * on a tie. Each queue, receiver and the client as a whole keep their caps; the reserves
   * above the last two are for light queues.
   */
  private nextToSend(): Waiting | undefined {
    const now = wallClock()
    this.countOutSlowOnes(performance.now())
    const room = this.recent.size < this.maxInFlight
    let best: string | undefined
    let bestOut = 0
    let bestSent = 0
    for (const [key, queue] of this.queues) {
      const endpoint = queue[0]?.input.endpoint
      if (endpoint !== undefined && (!room || this.held.has(endpoint))) continue
      this.giveUpExpired(queue, now)
      const head = queue[0]
      if (!head) {
        this.queues.delete(key)
        continue
      }
      const out = this.sentFrom.get(key) ?? 0
      if (out >= this.connectionsPerEndpoint) continue
      const light = out < LIGHT_BELOW && !this.slowQueues.has(key)
      const atOrigin = this.sentTo.get(head.target.origin) ?? 0
      if (atOrigin >= this.connectionsPerOrigin + (light ? RESERVE_PER_ORIGIN : 0)) continue
      if (head.input.endpoint === undefined) return this.take(key, queue)
      if (this.attempts.size >= this.maxOutstanding + (light ? RESERVE_IN_ALL : 0)) continue
      const sent = this.lastSent.get(key) ?? -1
      if (best === undefined || out < bestOut || (out === bestOut && sent < bestSent)) {
        best = key
        bestOut = out
        bestSent = sent
      }
    }
    const queue = best === undefined ? undefined : this.queues.get(best)
    return best === undefined || !queue ? undefined : this.take(best, queue)
  }

  /** Requests out for `slowAfterMs` or longer leave `recent`, and the room they took; their queues are slow. */
  private countOutSlowOnes(now: number): void {
    for (const attempt of this.recent) {
      if (now - attempt.sentAt < this.slowAfterMs) return
      this.recent.delete(attempt)
      this.markSlow(attempt.queue, true)
    }
  }

  private markSlow(queue: string, slow: boolean): void {
    this.slowQueues.delete(queue)
    if (!slow) return
    this.slowQueues.add(queue)
    if (this.slowQueues.size > LAST_SENT_KEPT)
      this.slowQueues.delete(this.slowQueues.values().next().value as string)
  }

  /**
   * Requests wait while `maxInFlight` recent ones are out: they may go when the earliest
   * turns slow, if nothing finishes before.
   */
  private wakeWhenOneTurnsSlow(): void {
    if (this.slowTimer !== undefined || this.queues.size === 0 || this.recent.size < this.maxInFlight) return
    const earliest = this.recent.values().next().value as Attempt
    const wait = Math.max(1, Math.ceil(earliest.sentAt + this.slowAfterMs - performance.now()))
    this.slowTimer = setTimeout(() => {
      this.slowTimer = undefined
      this.sendWaiting()
    }, wait).unref()
  }

  /** The head of `queue`, noted as its latest send. */
  private take(key: string, queue: Waiting[]): Waiting | undefined {
    this.lastSent.delete(key)
    this.lastSent.set(key, this.sends++)
    if (this.lastSent.size > LAST_SENT_KEPT) this.lastSent.delete(this.lastSent.keys().next().value as string)
    const next = queue.shift()
    if (queue.length === 0) this.queues.delete(key)
    return next
  }

  /** Requests at the head of `queue` past their `sendBy` are given up (the sweep looks at every one). */
  private giveUpExpired(queue: Waiting[], now: number): void {
    while (queue[0] && isLate(queue[0], now)) {
      queue.shift()?.reject(new NotSentError(WAITED_TOO_LONG))
    }
  }

  /** Rejects, unsent, the waiting requests that `which` picks. */
  private giveUp(which: (request: Waiting) => boolean, reason: string): void {
    for (const [key, queue] of this.queues) {
      const given = queue.filter(which)
      if (given.length === 0) continue
      const kept = queue.filter((request) => !which(request))
      if (kept.length === 0) this.queues.delete(key)
      else this.queues.set(key, kept)
      for (const request of given) request.reject(new NotSentError(reason))
    }
  }

  /**
   * The attempt's timeout bounds all of it, from here on: the headers (interim 1xx answers
   * do not extend it) and the part of the body that is read. Undici's headers and body
   * timers cover what they can; a sweep every quarter second aborts whatever has outlived
   * its deadline all the same.
   *
   * Undici's handler callbacks rather than `request()`: that wraps every response in a
   * stream read through an async iterator, the largest share of a delivery's HTTP cost
   * (webhook backlog profile, 2026-12-05), for a body that is mostly empty.
   */
  private send({ input, target, queue, resolve, reject }: Waiting): void {
    const started = performance.now()
    const attempt: Attempt = { queue, sentAt: started, deadline: started + input.timeoutMs }
    this.track(attempt, target.origin, queue)
    const kept: Buffer[] = []
    let size = 0
    let status = 0
    let settled = false
    /**
     * Settles once, whichever way; the room it leaves free takes the next request. A
     * failure (no 2xx answer, or none in full) holds its endpoint's other requests.
     */
    const settle = (failed: boolean, outcome: (durationMs: number, hold: number | undefined) => void) => {
      if (settled) return
      settled = true
      this.untrack(attempt, target.origin, queue)
      let hold: number | undefined
      if (failed && input.endpoint !== undefined) {
        hold = ++this.holds
        this.held.set(input.endpoint, { hold, since: performance.now() })
      }
      try {
        outcome(Math.round(performance.now() - started), hold)
      } finally {
        this.sendWaiting()
      }
    }
    const respond = () =>
      settle(!(status >= 200 && status < 300), (durationMs, hold) =>
        resolve({
          status,
          body: Buffer.concat(kept).subarray(0, RESPONSE_KEEP_BYTES).toString('utf8'),
          durationMs,
          ...(hold === undefined ? {} : { hold }),
        }),
      )
    const fail = (error: Error) =>
      settle(true, (durationMs, hold) => reject(new AttemptFailedError(error, durationMs, hold)))
    try {
      this.agent.dispatch(
        {
          origin: target.origin,
          path: target.path,
          method: 'POST',
          headers: input.sign ? withSignature(input.headers, input.sign, input.body) : input.headers,
          body: input.body,
          headersTimeout: input.timeoutMs,
          bodyTimeout: input.timeoutMs,
        },
        {
          onRequestStart(controller) {
            attempt.controller = controller
          },
          onResponseStart(_controller, statusCode) {
            // An interim answer (102, 103): the real one is still to come, within the deadline.
            if (statusCode >= 200) status = statusCode
          },
          onResponseData(controller, chunk) {
            if (size < RESPONSE_KEEP_BYTES) kept.push(chunk)
            size += chunk.length
            // Aborting ends the connection: a receiver streaming megabytes loses its keep-alive.
            if (size > RESPONSE_DRAIN_BYTES) controller.abort(new ResponseDrained())
            else if (performance.now() > attempt.deadline) controller.abort(new AttemptTimeoutError())
          },
          onResponseEnd() {
            respond()
          },
          onResponseError(_controller, error) {
            if (error instanceof ResponseDrained) respond()
            else fail(error)
          },
        },
      )
    } catch (error) {
      // Undici refuses some requests (a malformed header) by throwing rather than calling back.
      fail(error instanceof Error ? error : new Error(String(error)))
    }
  }

  private track(attempt: Attempt, origin: string, queue: string): void {
    this.attempts.add(attempt)
    this.recent.add(attempt)
    count(this.sentTo, origin, 1)
    count(this.sentFrom, queue, 1)
    this.sweep()
  }

  private untrack(attempt: Attempt, origin: string, queue: string): void {
    this.attempts.delete(attempt)
    this.recent.delete(attempt)
    this.markSlow(queue, performance.now() - attempt.sentAt >= this.slowAfterMs)
    count(this.sentTo, origin, -1)
    count(this.sentFrom, queue, -1)
  }

  /**
   * While requests are out or waiting, every quarter second: those past their deadline are
   * aborted, and those that waited longer than they may are given up even while nothing finishes.
   */
  private sweep(): void {
    this.sweeper ??= setInterval(() => {
      const now = performance.now()
      for (const late of this.attempts) {
        if (now > late.deadline) late.controller?.abort(new AttemptTimeoutError())
      }
      const wall = wallClock()
      this.giveUp((request) => isLate(request, wall), WAITED_TOO_LONG)
      let lifted = false
      for (const [endpoint, { since }] of this.held) {
        if (now - since < HOLD_LIMIT_MS) continue
        this.held.delete(endpoint)
        lifted = true
      }
      if (lifted) this.sendWaiting()
      if (this.attempts.size === 0 && this.queues.size === 0 && this.held.size === 0) {
        clearInterval(this.sweeper)
        this.sweeper = undefined
      }
    }, SWEEP_INTERVAL_MS).unref()
  }

  /** A webhook URL's origin and path, parsed once: the same few URLs are posted to over and over. */
  private targetOf(url: string): { origin: string; path: string } {
    let target = this.targets.get(url)
    if (target === undefined) {
      const parsed = new URL(url)
      target = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` }
      if (this.targets.size >= TARGET_CACHE_SIZE)
        this.targets.delete(this.targets.keys().next().value as string)
      this.targets.set(url, target)
    }
    return target
  }
}

/** Enough of a response was read: the rest is not waited for. */
class ResponseDrained extends Error {}

/** A request still unanswered, or its body still arriving, at the attempt's deadline. */
export class AttemptTimeoutError extends Error {
  override readonly name = 'TimeoutError'
  constructor() {
    super('the attempt outlasted its timeout')
  }
}

/** Adds `by` to the count of `key`, which is left out once it is 0. */
function count(counts: Map<string, number>, key: string, by: number): void {
  const counted = (counts.get(key) ?? 0) + by
  if (counted > 0) counts.set(key, counted)
  else counts.delete(key)
}

const isLate = (request: Waiting, now: number) =>
  request.input.sendBy !== undefined && now > request.input.sendBy

/**
 * A sent request that failed: the failure as undici (or the deadline) gave it — name, code,
 * message and cause, which is what callers read — with how long it took and the hold it put
 * on its endpoint. A new object: undici may hand one error to several requests.
 */
export class AttemptFailedError extends Error {
  readonly code?: string
  readonly durationMs: number
  readonly hold?: number

  constructor(failure: Error, durationMs: number, hold: number | undefined) {
    // The guarded lookup's refusal may be the failure itself or its cause: it stays the cause.
    super(failure.message, { cause: failure.cause ?? failure })
    this.name = failure.name
    const { code } = failure as { code?: unknown }
    if (typeof code === 'string') this.code = code
    this.durationMs = durationMs
    if (hold !== undefined) this.hold = hold
  }
}

/** A request given up before it was sent: no attempt was made, and the receiver saw nothing. */
export class NotSentError extends Error {
  override readonly name = 'NotSentError'
}
