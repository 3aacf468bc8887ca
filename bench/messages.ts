/**
 * Messaging benchmark: inbound messages per second through the gateway (decrypt →
 * normalize → store → event) against the raw Baileys receive loop in the same run, sends
 * accepted per second with pacing off, and memory after 100k stored messages.
 * Prints a Markdown table.
 *
 *   npx node bench/messages.ts [inbound=1000] [sends=500]
 */
import { statSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { createApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { SandboxServer } from '../src/sandbox/server.ts'
import { TestClient } from '../test/support/baileys-client.ts'
import { startTestGateway } from '../test/support/gateway.ts'
import { createLinkedSession } from '../test/support/sessions.ts'
import { eventually } from '../test/support/wait.ts'

const INBOUND = Number(process.argv[2] ?? 1000)
const SENDS = Number(process.argv[3] ?? 500)
/** messages each side receives first, untimed: Signal session set-up and JIT warm-up */
const WARMUP = 50
const STORED = 100_000
/** raw and gateway measured in turn, this many times each */
const ROUNDS = 5

const rate = (count: number, ms: number) => Math.round((count / ms) * 1000)
/** Polls `done` (every 5 ms: rounds are timed by it); a wait of over a minute fails the run instead of hanging it. */
const until = async (what: string, done: () => boolean | Promise<boolean>, everyMs = 5): Promise<void> => {
  await eventually(done, what, 60_000, everyMs)
}
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`

const sandbox = await new SandboxServer({
  seed: 77,
  receipts: { deliveryDelayMs: null, readDelayMs: null },
}).listen()
const sender = sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550700999', pushName: 'Bench' })

async function push(to: string, count: number, prefix = 'bench'): Promise<void> {
  for (let i = 0; i < count; i++)
    await sandbox.sendAs({ from: sender.phoneNumber, to, content: { text: `${prefix} ${i}` } })
}

// 1. Both receivers, linked and warmed up: a plain Baileys client counting upserts (the raw
// receive loop), and a gateway session, counted by its stored message.received events (the
// message row and its event are written in one transaction, published right after).
const client = new TestClient(sandbox)
await client.linkByQr('15550700001')
await new Promise((resolve) => setTimeout(resolve, 1000))
const rawCounts = new Map<string, number>()
client.socket.ev.on('messages.upsert', ({ messages }) => {
  for (const m of messages) {
    const prefix = m.message?.conversation?.split(' ')[0] ?? ''
    rawCounts.set(prefix, (rawCounts.get(prefix) ?? 0) + 1)
  }
})
const rawReceived = (prefix: string, count: number) =>
  until(`${count} "${prefix}" texts at the raw client`, () => (rawCounts.get(prefix) ?? 0) >= count)
await push('15550700001', WARMUP, 'warm')
await rawReceived('warm', WARMUP)

const gateway = await startTestGateway({ sandbox, environment: { LOG_LEVEL: 'silent' } })
const session = await createLinkedSession(gateway, 'bench', '15550700002')
await gateway.request('PATCH', '/api/v1/sessions/bench', { body: { config: { pacing: { enabled: false } } } })
await new Promise((resolve) => setTimeout(resolve, 1000))
const { openDatabase, createRepositories } = await import('../src/store/index.ts')
// Counted as they are published, after their transaction committed: as cheap to watch as the
// raw client's upserts (polling the events table would cost the gateway's process CPU).
let receivedCount = 0
gateway.app.bus.subscribe((event) => {
  if (event.type === 'message.received' && event.session?.id === session.id) receivedCount++
})
const receivedEvents = () => receivedCount
await push('15550700002', WARMUP, 'warm')
await until('the warm-up at the gateway', () => receivedEvents() >= WARMUP)

/** CPU time of this process (user + system, ms): steadier than wall time on a shared machine. */
const cpuMs = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}
interface Round {
  ms: number
  cpuMs: number
}
const timed = async (work: () => Promise<void>): Promise<Round> => {
  const started = performance.now()
  const cpuStarted = cpuMs()
  await work()
  return { ms: performance.now() - started, cpuMs: cpuMs() - cpuStarted }
}

// 2. Rounds taken in turn, raw loop then gateway, so that both meet the machine in the same
// moods (this shared VM's speed drifts by half from one minute to the next); medians compared.
const rawRounds: Round[] = []
const gatewayRounds: Round[] = []
for (let round = 0; round < ROUNDS; round++) {
  const prefix = `bench${round}`
  rawRounds.push(
    await timed(async () => {
      const done = rawReceived(prefix, INBOUND)
      await push('15550700001', INBOUND, prefix)
      await done
    }),
  )
  const before = receivedEvents()
  gatewayRounds.push(
    await timed(async () => {
      const pushing = push('15550700002', INBOUND, prefix)
      await until(`round ${round + 1} at the gateway`, () => receivedEvents() - before >= INBOUND)
      await pushing
    }),
  )
  process.stderr.write(`round ${round + 1}/${ROUNDS} measured\n`)
}
await client.end()
const median = (rounds: Round[], pick: (round: Round) => number) =>
  rounds.map(pick).sort((a, b) => a - b)[Math.floor(rounds.length / 2)] ?? 0
const rawMs = median(rawRounds, (round) => round.ms)
const rawCpuMs = median(rawRounds, (round) => round.cpuMs)
const gatewayMs = median(gatewayRounds, (round) => round.ms)
const gatewayCpuMs = median(gatewayRounds, (round) => round.cpuMs)
const spread = (rounds: Round[]) => rounds.map((round) => rate(INBOUND, round.ms)).join(', ')

// 3. Sends accepted per second with pacing off: the HTTP accept and its durable row, while
// the queue encrypts and sends alongside in this same process (as do the sandbox's devices);
// then the accept alone (the session stopped, `queue: true`) and how fast the queue drains.
/** Sends SENDS texts; how long the answers took, and the last one's id. */
const sendBatch = async (prefix: string, extra: object = {}) => {
  const at = performance.now()
  let lastId = ''
  for (let i = 0; i < SENDS; i++) {
    const response = await gateway.request('POST', '/api/v1/sessions/bench/messages', {
      body: { to: sender.phoneNumber, type: 'text', text: { body: `${prefix} ${i}` }, ...extra },
    })
    if (response.statusCode !== 202) throw new Error(response.body)
    lastId = response.json().id
  }
  return { ms: performance.now() - at, lastId }
}
// The queue sends in order: once the last is out (sent, or failed), so is every one before it.
// (The chat's newest message was asked before: a failed one keeps its accept time, so it never was.)
const isOut = async (id: string) =>
  (await gateway.request('GET', `/api/v1/sessions/bench/messages/${id}`)).json().status !== 'pending'
const live = await sendBatch('live')
const sendMs = live.ms
await until('the live sends', () => isOut(live.lastId), 20)
await gateway.request('POST', '/api/v1/sessions/bench/stop')
const queued = await sendBatch('queued', { queue: true })
const queueMs = queued.ms
const drainStarted = performance.now()
await gateway.request('POST', '/api/v1/sessions/bench/start')
await until('the queued sends', () => isOut(queued.lastId), 20)
const drainMs = performance.now() - drainStarted
process.stderr.write('sends measured\n')

// 4. Reading with 100k stored messages (bulk-inserted, as a history sync would), after a
// restart on that store: its memory, the file, and how fast the viewer's pages answer.
// The app is closed first: node:sqlite waits for a lock synchronously, so two connections
// writing in one process would deadlock.
await gateway.app.close()
const database = await openDatabase({ dataDir: gateway.dataDir })
const messages = createRepositories(database).messages
const batch = 5000
const now = Date.now()
for (let offset = 0; offset < STORED; offset += batch) {
  await messages.insertMany(
    Array.from({ length: batch }, (_, i) => ({
      id: `msg_bench${offset + i}`,
      sessionId: session.id,
      waId: `3EB0BENCH${offset + i}`,
      chatJid: `1555071${String((offset + i) % 500).padStart(4, '0')}@s.whatsapp.net`,
      chatLid: null,
      fromMe: false,
      senderJid: null,
      senderLid: null,
      pushName: 'Bench',
      timestamp: now - (offset + i) * 1000,
      type: 'text' as const,
      text: `stored message ${offset + i} with some ordinary length to it`,
      media: null,
      quotedId: null,
      mentions: [],
      targetId: null,
      details: null,
      status: null,
      failureReason: null,
      raw: null,
      sendRequest: null,
      sendAfter: null,
      createdAt: now,
      updatedAt: now,
    })),
  )
}
await database.close()
const app = await createApp({
  config: loadConfig({ DATA_DIR: gateway.dataDir, PORT: '0', LOG_LEVEL: 'silent' }),
  sandbox,
})
await app.restoreSessions()
const read = async (url: string) => {
  const times: number[] = []
  for (let i = 0; i < 200; i++) {
    const t = performance.now()
    const response = await app.http.inject({ method: 'GET', url, headers: { 'x-api-key': gateway.adminKey } })
    if (response.statusCode !== 200) throw new Error(`${url}: ${response.body}`)
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  return `${(times[100] ?? 0).toFixed(1)} ms / ${(times[198] ?? 0).toFixed(1)} ms`
}
const chatsPage = await read('/api/v1/sessions/bench/chats?limit=50')
const messagesPage = await read('/api/v1/sessions/bench/chats/15550710042/messages?limit=50')
global.gc?.()
const memory = process.memoryUsage()
const dbBytes = ['wagate.db', 'wagate.db-wal'].reduce((sum, file) => {
  try {
    return sum + statSync(join(gateway.dataDir, file)).size
  } catch {
    return sum
  }
}, 0)

const overhead = ((gatewayMs - rawMs) / rawMs) * 100
const cpuOverhead = ((gatewayCpuMs - rawCpuMs) / rawCpuMs) * 100
const perMessage = (ms: number) => `${((ms / INBOUND) * 1000).toFixed(0)} µs`
console.log(
  `Messaging benchmark — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
)
console.log('| measure | result |\n|---|---|')
for (const [measure, result] of [
  [
    `raw Baileys receive loop (${INBOUND} texts, until all upserted), median of ${ROUNDS} rounds`,
    `${rate(INBOUND, rawMs)} msg/s (rounds: ${spread(rawRounds)})`,
  ],
  [
    `through the gateway: decrypt → normalize → store → event (${INBOUND}), median of ${ROUNDS}`,
    `${rate(INBOUND, gatewayMs)} msg/s (rounds: ${spread(gatewayRounds)})`,
  ],
  ['gateway wall time over the raw loop, medians (target ≤ 25 %)', `${overhead.toFixed(0)} %`],
  [
    'CPU per message, raw loop → gateway, medians (sandbox included, same process)',
    `${perMessage(rawCpuMs)} → ${perMessage(gatewayCpuMs)} (${cpuOverhead >= 0 ? '+' : ''}${cpuOverhead.toFixed(0)} %)`,
  ],
  [
    `sends accepted, pacing off, session ready — the queue sending alongside (${SENDS} POST …/messages)`,
    `${rate(SENDS, sendMs)} req/s`,
  ],
  [`sends accepted, session stopped, \`queue: true\` (${SENDS})`, `${rate(SENDS, queueMs)} req/s`],
  [`queue drained after start: reconnect + ${SENDS} encrypted and sent`, `${rate(SENDS, drainMs)} msg/s`],
  [
    `process memory after ${STORED / 1000}k stored messages (RSS / heap used)`,
    `${mib(memory.rss)} / ${mib(memory.heapUsed)}`,
  ],
  [`SQLite file after ${STORED / 1000}k messages`, mib(dbBytes)],
  [`GET …/chats?limit=50 over ${STORED / 1000}k messages in 500 chats (p50 / p99)`, chatsPage],
  [`GET …/chats/{id}/messages?limit=50, 200-message chat (p50 / p99)`, messagesPage],
] as const) {
  console.log(`| ${measure} | ${result} |`)
}
await app.close()
await sandbox.close()
await rm(gateway.dataDir, { recursive: true, force: true })
process.exit(0)
