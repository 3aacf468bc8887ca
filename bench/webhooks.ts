/**
 * Webhooks benchmark: domain events per second from the event recorder to a 2xx at local
 * receivers, with 1 and with 50 endpoints, against a bare keep-alive HTTP client posting the
 * same requests to the same receivers in the same run; then WebSocket fan-out of events to
 * 100 stream clients. The receivers and the stream clients run in worker threads, so the
 * gateway's event loop is its own. Prints a Markdown table; progress goes to stderr.
 *
 *   npx node bench/webhooks.ts [events=2000] [events50=200] [streamEvents=1000] [--rounds=3] [--postgres]
 *
 * `--postgres` runs on a fresh database made through WAGATE_TEST_DATABASE_URL instead of SQLite.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { sql } from 'kysely'
import { Agent, request } from 'undici'
import WebSocket from 'ws'

/** CPU time so far: this thread's, and the whole process's (every thread). */
interface CpuTimes {
  thread: NodeJS.CpuUsage
  all: NodeJS.CpuUsage
}
const cpuTimes = (): CpuTimes => ({ thread: process.threadCpuUsage(), all: process.cpuUsage() })
/** Microseconds of CPU between two readings. */
const spent = (to: NodeJS.CpuUsage, from: NodeJS.CpuUsage) => to.user - from.user + to.system - from.system

/** Epoch milliseconds with sub-millisecond precision, comparable between threads. */
const clock = () => performance.timeOrigin + performance.now()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** Sleeps until `at` on `clock`; never returns early (a timer may fire a little before its time). */
async function until(at: number): Promise<void> {
  for (let wait = at - clock(); wait > 0; wait = at - clock()) await sleep(Math.ceil(wait))
}

/** One request seen by a receiver (`endpoint`: which one) or one message seen by a stream client. */
interface Receipt {
  endpoint: number
  /** the webhook-id header (the event id), or the streamed envelope's id */
  id: string
  at: number
}
/** A request a receiver kept whole, for the bare client to send again. */
interface Arrival extends Receipt {
  headers: Record<string, string>
  body: string
}
/** `keep`: whether the receivers keep each request's headers and body from now on (`Arrival`) or only a `Receipt`. */
type Ask = { op: 'count' } | { op: 'take' } | { op: 'close' } | { op: 'keep'; requests: boolean }
interface Count {
  count: number
  /** stream clients the server closed on */
  dropped: number
}

// ---- worker threads: the receivers and the stream clients -------------------------------

/** Headers the replaying client sends again; the rest belong to the connection. */
const CONNECTION_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
])
const replayable = (headers: IncomingHttpHeaders) =>
  Object.fromEntries(
    Object.entries(headers).filter(
      (entry): entry is [string, string] => typeof entry[1] === 'string' && !CONNECTION_HEADERS.has(entry[0]),
    ),
  )

/**
 * `count` loopback receivers answering 204, each on its own port (an endpoint per origin).
 * They keep whole requests only while asked to (the phases whose requests the bare client
 * sends again): copying each one's headers and body, and holding thousands of them, nearly
 * doubled a receiver's CPU time per request (27–31 µs → 45–55), which the gateway, busy on
 * both cores, paid for more than the bare client did.
 */
async function runReceivers(count: number): Promise<void> {
  let arrivals: Array<Receipt | Arrival> = []
  let keepRequests = false
  const servers: Server[] = []
  for (let endpoint = 0; endpoint < count; endpoint++) {
    const server = createServer((req, res) => {
      const id = String(req.headers['webhook-id'])
      if (!keepRequests) {
        req.resume()
        req.on('end', () => {
          arrivals.push({ endpoint, id, at: clock() })
          res.writeHead(204).end()
        })
        return
      }
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const at = clock()
        const body = Buffer.concat(chunks).toString('utf8')
        arrivals.push({ endpoint, id, at, headers: replayable(req.headers), body })
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    servers.push(server)
  }
  serve(
    { ports: servers.map((server) => (server.address() as AddressInfo).port) },
    () => ({ count: arrivals.length, dropped: 0 }),
    () => {
      const taken = arrivals
      arrivals = []
      return taken
    },
    () => {
      for (const server of servers) server.closeAllConnections()
      for (const server of servers) server.close()
    },
    (requests) => {
      keepRequests = requests
    },
  )
}

/** `count` WebSocket clients on the event stream, noting when each envelope arrives. */
async function runStreamClients(url: string, key: string, count: number): Promise<void> {
  let receipts: Receipt[] = []
  let closing = false
  let dropped = 0
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      (_, endpoint) =>
        new Promise<WebSocket>((resolve, reject) => {
          const socket = new WebSocket(url, { headers: { 'x-api-key': key } })
          socket.on('message', (data) => {
            const at = clock()
            receipts.push({ endpoint, id: (JSON.parse(String(data)) as { id: string }).id, at })
          })
          socket.on('close', () => {
            if (!closing) dropped++
          })
          socket.once('open', () => resolve(socket))
          socket.once('error', reject)
        }),
    ),
  )
  serve(
    {},
    () => ({ count: receipts.length, dropped }),
    () => {
      const taken = receipts
      receipts = []
      return taken
    },
    () => {
      closing = true
      for (const socket of sockets) socket.close()
    },
  )
}

/** A worker's side of the conversation: it says hello once, then answers one question at a time. */
function serve(
  hello: object,
  count: () => Count,
  take: () => Receipt[],
  close: () => void,
  keep?: (requests: boolean) => void,
): void {
  const port = parentPort!
  port.on('message', (ask: Ask) => {
    if (ask.op === 'count') port.postMessage(count())
    else if (ask.op === 'take') port.postMessage(take())
    else if (ask.op === 'keep') {
      keep?.(ask.requests)
      port.postMessage({})
    } else {
      close()
      port.postMessage({})
    }
  })
  port.postMessage(hello)
}

interface Helper {
  hello: Record<string, unknown>
  ask<T>(ask: Ask): Promise<T>
  close(): Promise<void>
}

async function startHelper(data: unknown): Promise<Helper> {
  const worker = new Worker(new URL(import.meta.url), { workerData: data })
  const next = <T>() =>
    new Promise<T>((resolve, reject) => {
      const fail = (error: Error) => reject(error)
      worker.once('error', fail)
      worker.once('message', (message: T) => {
        worker.off('error', fail)
        resolve(message)
      })
    })
  const hello = await next<Record<string, unknown>>()
  const ask = <T>(question: Ask) => {
    const answer = next<T>()
    worker.postMessage(question)
    return answer
  }
  return {
    hello,
    ask,
    close: async () => {
      await ask({ op: 'close' })
      await worker.terminate()
    },
  }
}

// ---- the main thread: the gateway, the producer and the bare client ---------------------

async function main(): Promise<void> {
  // Imported here so the worker threads do not load the gateway.
  const { createApp } = await import('../src/app.ts')
  const { loadConfig } = await import('../src/config.ts')
  const { openDatabase } = await import('../src/store/db.ts')
  const { freshPostgresDatabase } = await import('../test/support/postgres.ts')
  type EventSession = Parameters<Awaited<ReturnType<typeof createApp>>['recorder']['record']>[0]

  const args = process.argv.slice(2)
  const numbers = args.filter((arg) => !arg.startsWith('--')).map(Number)
  const EVENTS = numbers[0] ?? 2000
  const EVENTS_50 = numbers[1] ?? 200
  const STREAM_EVENTS = numbers[2] ?? 1000
  const ENDPOINTS = 50
  const STREAM_CLIENTS = 100
  const WARM_UP = 1000
  const STREAM_WARM_UP = 200
  const BARE_WARM_UP_ROUNDS = 10
  /** alternating rounds of the throughput phases, of which the table gives medians */
  const ROUNDS = Number(args.find((arg) => arg.startsWith('--rounds='))?.slice('--rounds='.length) ?? 3)
  /** record() loops at once in the concurrent one-by-one phase: sessions receiving at the same time */
  const PRODUCERS = 32
  // The delivery worker's and the webhook HTTP client's defaults (delivery-worker.ts,
  // http-client.ts): the bare client gets the same in-flight cap and connection cap.
  const CONCURRENCY = 32
  const CONNECTIONS_PER_ENDPOINT = 16
  const progress = (line: string) => process.stderr.write(`${line}\n`)
  const problems: string[] = []

  const postgres = args.includes('--postgres') ? await freshPostgresDatabase('bench_webhooks') : undefined
  if (args.includes('--postgres') && !postgres) throw new Error('--postgres needs WAGATE_TEST_DATABASE_URL')
  const dataDir = await mkdtemp(join(os.tmpdir(), 'wagate-bench-'))
  const config = loadConfig({
    DATA_DIR: dataDir,
    PORT: '0',
    LOG_LEVEL: 'error',
    WEBHOOK_ALLOW_PRIVATE: '1',
    ...(postgres ? { DATABASE_URL: postgres.url } : {}),
  })
  const app = await createApp({ config })
  const base = await app.listen()
  const adminKey = app.bootstrap.adminKey ?? ''
  const receivers = await startHelper({ role: 'receivers', count: ENDPOINTS })
  const ports = receivers.hello['ports'] as number[]
  const agent = new Agent({ connections: CONNECTIONS_PER_ENDPOINT, keepAliveTimeout: 30_000 })
  // A second connection to the store, to check what the worker recorded.
  const store = await openDatabase({ databaseUrl: config.databaseUrl, dataDir })
  let stream: Helper | undefined

  // biome-ignore lint/suspicious/noExplicitAny: the bench reads a few known fields of JSON answers
  const api = async (method: 'POST' | 'PATCH', url: string, body: object): Promise<any> => {
    const response = await app.http.inject({ method, url, payload: body, headers: { 'x-api-key': adminKey } })
    if (response.statusCode >= 300)
      throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`)
    return response.json()
  }

  try {
    const created = await api('POST', '/api/v1/sessions', { name: 'bench', sandbox: true, start: false })
    const session: EventSession = {
      id: created.id,
      organizationId: app.bootstrap.organizationId,
      name: created.name,
      metadata: created.config?.metadata ?? {},
    }
    // The app's own recorder: its ingest's, whose bus wakes the delivery worker and feeds the event stream.
    const { recorder } = app

    /**
     * Records message.received events back to back — each record call waiting for the one
     * before it, in each of `producers` loops at once — or, from one producer, at `rate` a
     * second; when each record call began, by event id.
     */
    const record = async (count: number, rate?: number, producers = 1): Promise<Map<string, number>> => {
      const begun = new Map<string, number>()
      const start = clock()
      let next = 0
      await Promise.all(
        Array.from({ length: producers }, async () => {
          while (next < count) {
            const i = next++
            if (rate) await until(start + (i * 1000) / rate)
            const at = clock()
            const [event] = await recorder.record(session, [{ type: 'message.received', data: message(i) }])
            if (event) begun.set(event.id, at)
          }
        }),
      )
      return begun
    }

    /**
     * Waits until the helper has seen `expected` (or nothing more comes for 15 s), then takes
     * what it saw; `cpu` is this thread's CPU time when the wait ended.
     */
    const collect = async <T extends Receipt>(
      helper: Helper,
      expected: number,
    ): Promise<{ receipts: T[]; cpu: CpuTimes }> => {
      let last = -1
      let since = clock()
      for (;;) {
        const { count, dropped } = await helper.ask<Count>({ op: 'count' })
        if (count >= expected || dropped > 0) break
        if (count !== last) [last, since] = [count, clock()]
        else if (clock() - since > 15_000) break
        await sleep(5)
      }
      const cpu = cpuTimes()
      // Room for a duplicate sent right behind the last one to show up.
      await sleep(100)
      return { receipts: await helper.ask<T[]>({ op: 'take' }), cpu }
    }

    /**
     * Before each timed phase: SQLite's write-ahead log copied back into the database file
     * and a pause, so that no phase pays for the checkpoint of what the one before wrote
     * (the background checkpointer's thread shares the two cores with everything else).
     */
    const quiesce = async () => {
      if (!postgres) await sql`pragma wal_checkpoint(truncate)`.execute(store.db)
      await sleep(200)
    }

    /** Every (endpoint, id) expected arrived exactly once, and nothing else did. */
    const verify = (label: string, receipts: Receipt[], ids: Iterable<string>, endpoints: number) => {
      const expected = new Set<string>()
      for (const id of ids) for (let e = 0; e < endpoints; e++) expected.add(`${e}|${id}`)
      const seen = new Set<string>()
      let duplicates = 0
      let unexpected = 0
      for (const receipt of receipts) {
        const key = `${receipt.endpoint}|${receipt.id}`
        if (seen.has(key)) duplicates++
        else if (!expected.has(key)) unexpected++
        seen.add(key)
      }
      const missing = [...expected].filter((key) => !seen.has(key)).length
      if (missing || duplicates || unexpected)
        problems.push(`${label}: ${missing} missing, ${duplicates} duplicated, ${unexpected} unexpected`)
    }

    interface Measured {
      perSecond: number
      p50: number
      p99: number
      /** this thread's CPU time per request (µs): the gateway's, or the bare client's */
      cpu: number
      /** the whole process's CPU time per request (µs), every thread's: receivers included */
      cpuAll: number
    }
    /** A gateway phase, and the bare client's runs just before and just after it. */
    interface Bracketed {
      gateway: Measured
      before: Measured
      after: Measured
    }
    /** One alternating round of an endpoint count's throughput phases. */
    interface Round {
      drained: Bracketed
      concurrent: Bracketed
      recordedConcurrently: number
      oneByOne: Bracketed
      recorded: number
    }
    const median = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b)
      const middle = Math.floor(sorted.length / 2)
      return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
    }
    /** Each field's median over the rounds. */
    const medianOf = (measures: Measured[]): Measured => ({
      perSecond: median(measures.map((m) => m.perSecond)),
      p50: median(measures.map((m) => m.p50)),
      p99: median(measures.map((m) => m.p99)),
      cpu: median(measures.map((m) => m.cpu)),
      cpuAll: median(measures.map((m) => m.cpuAll)),
    })
    const measure = (
      { receipts, cpu }: { receipts: Receipt[]; cpu: CpuTimes },
      startOf: (receipt: Receipt) => number,
      from: number,
      cpuFrom: CpuTimes,
    ): Measured => {
      const latencies = receipts.map((receipt) => receipt.at - startOf(receipt)).sort((a, b) => a - b)
      const p = (q: number) =>
        latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0
      const last = receipts.reduce((latest, receipt) => Math.max(latest, receipt.at), from)
      return {
        perSecond: receipts.length / ((last - from) / 1000),
        p50: p(0.5),
        p99: p(0.99),
        cpu: spent(cpu.thread, cpuFrom.thread) / receipts.length,
        cpuAll: spent(cpu.all, cpuFrom.all) / receipts.length,
      }
    }

    /** Whether the receivers keep whole requests (`Arrival`s, for the bare client) or only receipts. */
    const keeping = async (requests = false) => {
      await receivers.ask({ op: 'keep', requests })
    }
    /** The whole requests of a phase the receivers kept them in; none otherwise. */
    const kept = (receipts: Receipt[], keep = false): Arrival[] => (keep ? (receipts as Arrival[]) : [])

    /** Events through the gateway: recorded, stored with their deliveries, claimed, signed, POSTed. */
    const pipeline = async (
      label: string,
      count: number,
      endpoints: number,
      options: { rate?: number; producers?: number; keep?: boolean } = {},
    ) => {
      await keeping(options.keep)
      await quiesce()
      const from = clock()
      const cpuFrom = cpuTimes()
      const begun = await record(count, options.rate, options.producers)
      const recorded = count / ((clock() - from) / 1000)
      const collected = await collect(receivers, count * endpoints)
      verify(label, collected.receipts, begun.keys(), endpoints)
      const startOf = (receipt: Receipt) => begun.get(receipt.id) ?? from
      const result = measure(collected, startOf, from, cpuFrom)
      return { arrivals: kept(collected.receipts, options.keep), begun, recorded, result }
    }

    /**
     * A backlog: `count` events and their deliveries stored in one transaction (the worker
     * sees none of them before the commit), so every delivery is due at once, as every
     * request is for the bare client. Counts from the commit.
     */
    const backlog = async (label: string, count: number, endpoints: number, keep = false) => {
      await keeping(keep)
      const items = Array.from({ length: count }, (_, i) => ({
        type: 'message.received' as const,
        data: message(i),
      }))
      // One call, one transaction: the events and every delivery they owe.
      const stored = await recorder.store(session, items)
      await quiesce()
      const from = clock()
      const cpuFrom = cpuTimes()
      recorder.publish(stored)
      const collected = await collect(receivers, count * endpoints)
      const ids = stored.map((event) => event.id)
      verify(label, collected.receipts, ids, endpoints)
      return {
        arrivals: kept(collected.receipts, keep),
        result: measure(collected, () => from, from, cpuFrom),
      }
    }

    /**
     * The same requests (bytes and headers) to the same receivers with a bare keep-alive
     * client: CONCURRENCY in flight, CONNECTIONS_PER_ENDPOINT per receiver (an endpoint each), like the worker.
     * Each is released when its event was recorded in the gateway's run (`begun`), or all at
     * once without it; latency counts from the release.
     */
    const bare = async (label: string, arrivals: Arrival[], begun?: Map<string, number>) => {
      await keeping(false)
      const first = begun ? Math.min(...begun.values()) : 0
      const offsets = arrivals.map((arrival) => (begun ? (begun.get(arrival.id) ?? first) - first : 0))
      const order = arrivals.map((_, i) => i).sort((a, b) => offsets[a]! - offsets[b]!)
      await quiesce()
      const start = clock()
      const cpuFrom = cpuTimes()
      let next = 0
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < order.length) {
            const index = order[next++]!
            const arrival = arrivals[index]!
            await until(start + offsets[index]!)
            const response = await request(`http://127.0.0.1:${ports[arrival.endpoint]}/hook`, {
              method: 'POST',
              headers: arrival.headers,
              body: arrival.body,
              dispatcher: agent,
            })
            await response.body.text()
            if (response.statusCode !== 204) problems.push(`${label}: HTTP ${response.statusCode}`)
          }
        }),
      )
      const received = await collect(receivers, arrivals.length)
      const endpoints = new Set(arrivals.map((arrival) => arrival.endpoint)).size
      verify(label, received.receipts, new Set(arrivals.map((arrival) => arrival.id)), endpoints)
      const released = (receipt: Receipt) => start + (begun ? (begun.get(receipt.id) ?? first) - first : 0)
      return measure(received, released, start, cpuFrom)
    }

    const webhook = async (endpoint: number): Promise<string> =>
      (await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${ports[endpoint]}/hook` })).id
    const disable = (id: string) => api('PATCH', `/api/v1/webhooks/${id}`, { enabled: false })

    /**
     * One endpoint count: warm up; a backlog drained, against the bare client on the same
     * requests; events recorded one by one as fast as they go; then a steady half of that
     * rate for latency, the bare client released on the same schedule.
     */
    const scenario = async (endpoints: number, events: number) => {
      const label = (what: string) => `${what}, ${endpoints} endpoint(s)`
      const ids: string[] = []
      for (let e = 0; e < endpoints; e++) ids.push(await webhook(e))
      progress(label('warming up'))
      const warm = await pipeline(label('warm-up'), Math.ceil(WARM_UP / endpoints), endpoints, { keep: true })
      // The bare client's code has to be as warm as the gateway's, whose HTTP client runs on
      // a thread of its own: on this thread undici's first several thousand requests ran up
      // to twice as slow as later ones (1 endpoint, 3 rounds: 7,100 req/s; 10 rounds: 13,400).
      for (let round = 0; round < BARE_WARM_UP_ROUNDS; round++)
        await bare(label('bare warm-up'), warm.arrivals)
      // The bare client's requests: what a backlog of this size made the gateway send.
      const { arrivals: requests } = await backlog(label('bare client’s requests'), events, endpoints, true)
      // Alternating rounds, each gateway phase between two bare runs: the machine's speed
      // drifts by tens of percent within minutes, so each phase is compared with the bare runs
      // just before and after it, and the table gives medians.
      const bareRuns: Measured[] = [await bare(label('bare'), requests)]
      const bracket = async (gateway: Promise<Measured> | Measured): Promise<Bracketed> => {
        const measured = await gateway
        const before = bareRuns.at(-1) as Measured
        const after = await bare(label('bare'), requests)
        bareRuns.push(after)
        return { gateway: measured, before, after }
      }
      const rounds: Round[] = []
      for (let round = 1; round <= ROUNDS; round++) {
        const of = `round ${round}/${ROUNDS}`
        progress(label(`${of}: backlog of ${events} events, between bare runs`))
        const drained = await bracket(
          backlog(label('backlog'), events, endpoints).then((phase) => phase.result),
        )
        progress(label(`${of}: ${events} events one by one, ${PRODUCERS} producers`))
        const concurrent = await pipeline(label('one by one, producers'), events, endpoints, {
          producers: PRODUCERS,
        })
        const concurrentRun = await bracket(concurrent.result)
        progress(label(`${of}: ${events} events one by one, one producer`))
        const oneByOne = await pipeline(label('one by one'), events, endpoints)
        const oneByOneRun = await bracket(oneByOne.result)
        rounds.push({
          drained,
          concurrent: concurrentRun,
          recordedConcurrently: concurrent.recorded,
          oneByOne: oneByOneRun,
          recorded: oneByOne.recorded,
        })
      }
      const oneByOne = { result: medianOf(rounds.map((round) => round.oneByOne.gateway)) }
      // Half the gateway's one-by-one rate, for about three seconds.
      const rate = oneByOne.result.perSecond / endpoints / 2
      const steadyCount = Math.max(20, Math.min(events, Math.round(rate * 3)))
      progress(label(`${steadyCount} events at ${rate.toFixed(0)}/s`))
      const steady = await pipeline(label('steady'), steadyCount, endpoints, { rate, keep: true })
      const steadyBare = await bare(label('bare steady'), steady.arrivals, steady.begun)
      for (const id of ids) await disable(id)
      const deliveries = (warm.begun.size + events + 3 * events * ROUNDS + steadyCount) * endpoints
      return {
        rounds,
        drained: medianOf(rounds.map((round) => round.drained.gateway)),
        bare: medianOf(bareRuns),
        bareRuns: bareRuns.length,
        concurrent: medianOf(rounds.map((round) => round.concurrent.gateway)),
        recordedConcurrently: median(rounds.map((round) => round.recordedConcurrently)),
        oneByOne: oneByOne.result,
        recorded: median(rounds.map((round) => round.recorded)),
        steady: steady.result,
        steadyBare,
        rate,
        steadyCount,
        deliveries,
      }
    }

    const one = await scenario(1, EVENTS)
    const fifty = await scenario(ENDPOINTS, EVENTS_50)
    const rows = await checkStore(store, one.deliveries + fifty.deliveries)
    if (rows) problems.push(rows)

    progress(`stream: ${STREAM_CLIENTS} clients, ${STREAM_EVENTS} events`)
    stream = await startHelper({
      role: 'stream',
      url: `${base.replace('http', 'ws')}/api/v1/events/stream`,
      key: adminKey,
      count: STREAM_CLIENTS,
    })
    // Also proves every client is subscribed: the server subscribes just after the upgrade.
    const warmStream = await record(STREAM_WARM_UP)
    verify(
      'stream warm-up',
      (await collect(stream, STREAM_WARM_UP * STREAM_CLIENTS)).receipts,
      warmStream.keys(),
      STREAM_CLIENTS,
    )
    const recordStart = clock()
    const cpuStart = cpuTimes()
    const streamed = await record(STREAM_EVENTS)
    const recordRate = STREAM_EVENTS / ((clock() - recordStart) / 1000)
    const collected = await collect(stream, STREAM_EVENTS * STREAM_CLIENTS)
    const { receipts } = collected
    verify('stream', receipts, streamed.keys(), STREAM_CLIENTS)
    const order = [...streamed.keys()]
    const inOrder = Array.from({ length: STREAM_CLIENTS }, (_, client) =>
      receipts.filter((receipt) => receipt.endpoint === client).map((receipt) => receipt.id),
    ).every((ids) => ids.every((id, i) => id === order[i]))
    if (!inOrder) problems.push('stream: a client got events out of order')
    const { dropped } = await stream.ask<Count>({ op: 'count' })
    if (dropped) problems.push(`stream: ${dropped} clients were dropped`)
    const fanOut = measure(
      collected,
      (receipt) => streamed.get(receipt.id) ?? recordStart,
      recordStart,
      cpuStart,
    )

    const ms = (m: { p50: number; p99: number }) => `${m.p50.toFixed(2)} ms / ${m.p99.toFixed(2)} ms`
    const n = Math.round
    const cpuOf = (m: Measured) => `${n(m.cpu)} µs CPU each (all threads: ${n(m.cpuAll)})`
    const cpus = os.cpus()
    console.log(
      `Webhooks benchmark — ${cpus[0]?.model ?? 'cpu'} × ${cpus.length}, Node ${process.version}, ` +
        `${postgres ? 'Postgres' : 'SQLite'}, ${new Date().toISOString().slice(0, 10)}\n`,
    )
    console.log('| measure | wagate | bare keep-alive client | wagate / bare |\n|---|---|---|---|')
    const rowsOf = (endpoints: number, events: number, r: typeof one) => {
      const name = endpoints === 1 ? '1 endpoint' : `${endpoints} endpoints`
      const deliveries = endpoints === 1 ? `${events}` : `${events} × ${endpoints} = ${events * endpoints}`
      /**
       * The median of the rounds' ratios (each gateway phase against the mean of the bare runs
       * just before and after it), and their range.
       */
      const ratios = (pick: (round: Round) => Bracketed) => {
        const each = r.rounds.map((round) => {
          const { gateway, before, after } = pick(round)
          return (gateway.perSecond / ((before.perSecond + after.perSecond) / 2)) * 100
        })
        const range = `${n(Math.min(...each))}–${n(Math.max(...each))}%`
        return `${n(median(each))}%${each.length > 1 ? ` (rounds: ${range})` : ''}`
      }
      /** Delivered as fast as it was recorded (within 3 %): the producer set the pace, not delivery. */
      const producerBound = (delivered: number, recorded: number) => delivered >= recorded * 0.97
      const perEvent = (perSecond: number) =>
        endpoints === 1
          ? `${n(perSecond)} events/s`
          : `${n(perSecond)} deliveries/s (${n(perSecond / endpoints)} events/s)`
      return [
        [
          `${name}: backlog of ${deliveries} deliveries, all due at once → 204`,
          `${perEvent(r.drained.perSecond)}; ${cpuOf(r.drained)}`,
          `${n(r.bare.perSecond)} req/s (median of ${r.bareRuns} runs); ${cpuOf(r.bare)}`,
          ratios((round) => round.drained),
        ],
        [
          `${name}: ${events} events recorded one by one by ${PRODUCERS} producers at once (at ${n(r.recordedConcurrently)}/s) → 204`,
          `${perEvent(r.concurrent.perSecond)}; ${cpuOf(r.concurrent)}`,
          `${n(r.bare.perSecond)} req/s`,
          ratios((round) => round.concurrent),
        ],
        [
          `${name}: ${events} events recorded one by one by a single producer (at ${n(r.recorded)}/s) → 204`,
          `${perEvent(r.oneByOne.perSecond)}; ${cpuOf(r.oneByOne)}`,
          `${n(r.bare.perSecond)} req/s`,
          `${ratios((round) => round.oneByOne)}${
            producerBound(r.oneByOne.perSecond / endpoints, r.recorded) ? '; bound by the producer' : ''
          }`,
        ],
        [
          `… latency p50 / p99, record → receiver, at a steady ${n(r.rate)} events/s (${r.steadyCount} events)`,
          ms(r.steady),
          ms(r.steadyBare),
          '',
        ],
      ]
    }
    const table = [
      ...rowsOf(1, EVENTS, one),
      ...rowsOf(ENDPOINTS, EVENTS_50, fifty),
      [
        `WebSocket fan-out: ${STREAM_EVENTS} events to ${STREAM_CLIENTS} clients (recorded at ${n(recordRate)} events/s)`,
        `${n(fanOut.perSecond)} messages/s`,
        '',
        '',
      ],
      ['… latency p50 / p99, record → client', ms(fanOut), '', ''],
      [
        'verified',
        problems.length === 0
          ? 'every delivery and message exactly once; every row delivered at the first attempt'
          : 'FAILED (see below)',
        'every request exactly once',
        '',
      ],
    ]
    for (const row of table) console.log(`| ${row.join(' | ')} |`)
    console.log(
      [
        '',
        `Throughput rows: medians of ${ROUNDS} rounds of the three gateway phases (backlog, ${PRODUCERS} producers, one producer),`,
        `each between two runs of the bare client; the ratio is the median over the rounds of each gateway phase against`,
        `the mean of the bare runs just before and after it, the range in brackets. A phase delivered as fast as its events`,
        `were recorded is bound by the producer: a single producer waiting for each event's commit records no faster, and`,
        `what it measures is that commit, not delivery.`,
        `Backlog: from the commit of the transaction that stored the events to the last request at a receiver;`,
        `the bare client (undici, keep-alive) posts the same requests, same bytes and headers, all ready at once.`,
        `One by one: from the first record call to the last request; each producer calls record() for one event`,
        `and waits until it is stored before the next, ${PRODUCERS} producers at once (as many sessions receiving at the same`,
        `time) or a single one; the calls of one event-loop turn share a transaction (group commit), so a single`,
        `waiting producer gets a commit per event. The gateway records and delivers on one event loop, its HTTP`,
        `requests made on a thread of their own. Both sides: at most ${CONCURRENCY} requests in flight (the gateway stops counting one out for 200 ms:`,
        `none is, here) and ${CONNECTIONS_PER_ENDPOINT} keep-alive connections per`,
        `receiver (the delivery worker's and its HTTP client's defaults; the worker also holds deliveries ready —`,
        `up to twice as many claimed, and up to 2048 handed over as they are recorded, of which it hands its HTTP`,
        `thread up to 4 × ${CONCURRENCY} to send as connections free up — as the bare client holds all of its requests).`,
        `Both are warmed up first:`,
        `${WARM_UP} deliveries, and the bare client replays them ${BARE_WARM_UP_ROUNDS} times; each timed phase starts with`,
        `SQLite's write-ahead log copied back. Latency at a steady rate: from the record call (bare: from when`,
        `the gateway recorded that event) to the request's arrival. µs CPU each: this (the event loop's) thread's`,
        `CPU time over the run (process.threadCpuUsage) per request, the recording included one by one; the`,
        `gateway's HTTP thread is not in it; all threads: the whole process's CPU time per request (receivers,`,
        `the HTTP thread, SQLite's checkpointer and the garbage collector's threads too). Receivers (one port`,
        `each, answering 204; they keep whole requests only in the warm-up, the backlog the bare client replays and the`,
        `steady phase) and stream clients run in worker threads of this process.`,
      ].join('\n'),
    )
    if (problems.length > 0) {
      console.log(`\nProblems:\n${problems.map((problem) => `- ${problem}`).join('\n')}`)
      process.exitCode = 1
    }
  } finally {
    await stream?.close()
    await receivers.close()
    await agent.close()
    await store.close()
    await app.close()
    await postgres?.drop()
    await rm(dataDir, { recursive: true, force: true })
  }

  /** Every delivery row delivered, each at its first attempt; a problem otherwise. */
  async function checkStore(database: typeof store, expected: number): Promise<string | undefined> {
    const deadline = clock() + 10_000
    for (;;) {
      const rows = await database.db
        .selectFrom('webhook_deliveries')
        .select([
          'status',
          (eb) => eb.fn.countAll<number>().as('count'),
          (eb) => eb.fn.sum<number>('attempts').as('attempts'),
        ])
        .groupBy('status')
        .execute()
      const delivered = rows.find((row) => row.status === 'delivered')
      const total = rows.reduce((sum, row) => sum + Number(row.count), 0)
      if (
        total === expected &&
        Number(delivered?.count) === expected &&
        Number(delivered?.attempts) === expected
      )
        return undefined
      if (clock() > deadline)
        return `store: expected ${expected} deliveries delivered at the first attempt, found ${JSON.stringify(rows)}`
      await sleep(50)
    }
  }
}

/** A text message as the ingest would record it. */
function message(i: number) {
  const jid = '15550001111@s.whatsapp.net'
  return {
    id: `msg_bench${String(i).padStart(8, '0')}`,
    waId: `3EB0${String(i).padStart(16, '0')}`,
    chatJid: jid,
    chatLid: null,
    fromMe: false,
    senderJid: jid,
    senderLid: null,
    pushName: 'Bench',
    timestamp: Date.now(),
    type: 'text' as const,
    text: 'Hello! Is the order from yesterday on its way, and can you send me the tracking link?',
    media: null,
    quotedId: null,
    mentions: [],
    targetId: null,
    details: null,
    status: null,
  }
}

if (!isMainThread) {
  const data = workerData as
    | { role: 'receivers'; count: number }
    | { role: 'stream'; url: string; key: string; count: number }
  if (data.role === 'receivers') await runReceivers(data.count)
  else await runStreamClients(data.url, data.key, data.count)
} else {
  await main()
}
