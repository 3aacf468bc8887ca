/*
 * The thread of `ThreadedWebhookClient`: an `UndiciWebhookClient` behind the SSRF guard's
 * socket lookup, posting what the event loop's delivery worker hands over.
 */
import { createSecretKey, type KeyObject } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'
import { NotSentError, UndiciWebhookClient } from './http-client.ts'
import type { RequestSigning } from './signing.ts'
import { SsrfGuard, TargetRefusedError } from './ssrf-guard.ts'
import type {
  CrossingSigning,
  FromHttpThread,
  ThreadError,
  ThreadedWebhookClientOptions,
  ToHttpThread,
} from './threaded-http-client.ts'

/** Signing keys kept ready, by their bytes: far more than there are endpoints in use. */
const KEY_CACHE_SIZE = 1_000

const port = parentPort
if (!port) throw new Error('http-client.worker.ts runs as a worker thread')
const options = workerData as ThreadedWebhookClientOptions
const guard = new SsrfGuard({ allowPrivateTargets: options.allowPrivateTargets })
const client = new UndiciWebhookClient({
  lookup: guard.lookup(),
  connectTimeoutMs: options.connectTimeoutMs,
  connectionsPerEndpoint: options.connectionsPerEndpoint,
  connectionsPerOrigin: options.connectionsPerOrigin,
  maxInFlight: options.maxInFlight,
  slowAfterMs: options.slowAfterMs,
  maxOutstanding: options.maxOutstanding,
})

const keys = new Map<string, KeyObject>()

/** A crossing request's signing, with a KeyObject made once per key: one made per request costs several times the signing. */
function signingOf({ key: bytes, ...signing }: CrossingSigning): RequestSigning {
  let key = keys.get(bytes)
  if (key === undefined) {
    key = createSecretKey(Buffer.from(bytes, 'base64'))
    if (keys.size >= KEY_CACHE_SIZE) keys.delete(keys.keys().next().value as string)
    keys.set(bytes, key)
  }
  return { ...signing, key }
}

type Outcome = Extract<FromHttpThread, { op: 'done' }>['outcomes'][number]
let outcomes: Outcome[] = []
const inFlight = new Set<Promise<void>>()

/** Outcomes of one turn of this thread's loop go back together. */
function answer(outcome: Outcome): void {
  if (outcomes.length === 0) setImmediate(sendOutcomes)
  outcomes.push(outcome)
}

function sendOutcomes(): void {
  if (outcomes.length === 0) return
  const batch = outcomes
  outcomes = []
  port?.postMessage({ op: 'done', outcomes: batch } satisfies FromHttpThread)
}

function crossable(error: unknown): ThreadError {
  const { name, message, code, cause, durationMs, hold } = (error ?? {}) as {
    name?: string
    message?: string
    code?: string
    cause?: unknown
    durationMs?: number
    hold?: number
  }
  if (error instanceof NotSentError) return { name: error.name, message: error.message, notSent: true }
  // A sent request's timing, and the hold its failure put on its endpoint: the worker must see it to lift it.
  const timing = {
    ...(typeof durationMs === 'number' ? { durationMs } : {}),
    ...(typeof hold === 'number' ? { hold } : {}),
  }
  // The guarded socket lookup reports its refusal as the cause of a connect failure.
  const refusal =
    error instanceof TargetRefusedError ? error : cause instanceof TargetRefusedError ? cause : null
  if (refusal) return { name: refusal.name, message: refusal.message, refused: true, ...timing }
  return { name: name ?? 'Error', message: message ?? String(error), ...(code ? { code } : {}), ...timing }
}

port.on('message', (message: ToHttpThread) => {
  if (message.op === 'withdraw') {
    client.withdraw(message.endpoint, message.hold)
    return
  }
  if (message.op === 'resume') {
    client.resume(message.endpoint, message.hold)
    return
  }
  if (message.op === 'close') {
    // The requests in flight finish and their outcomes leave before the port closes.
    void Promise.all(inFlight)
      .then(() => client.close())
      .finally(() => {
        sendOutcomes()
        port.postMessage({ op: 'closed' } satisfies FromHttpThread)
        port.close()
      })
    return
  }
  for (const { id, sign, ...request } of message.requests) {
    // post() never throws: a bad URL is a rejected promise like any other failure.
    const done = client.post(sign ? { ...request, sign: signingOf(sign) } : request).then(
      (response) => answer({ id, response }),
      (error: unknown) => answer({ id, error: crossable(error) }),
    )
    inFlight.add(done)
    void done.finally(() => inFlight.delete(done))
  }
})
