/**
 * Gateway benchmark: key-authenticated reads per second, restoring 100 linked sandbox
 * sessions after a restart, and memory per ready session. The gateway runs in its own
 * process (as `npm start` would run it) so the load generator does not share its event loop.
 * Prints a Markdown table.
 *
 *   npx node bench/sessions.ts [sessions=100] [seconds=10] [connections=32]
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'

const SESSIONS = Number(process.argv[2] ?? 100)
const SECONDS = Number(process.argv[3] ?? 10)
const CONNECTIONS = Number(process.argv[4] ?? 32)
const PORT = 39_000 + Math.floor(Math.random() * 1000)
const base = `http://127.0.0.1:${PORT}`

const dataDir = await mkdtemp(join(os.tmpdir(), 'wagate-bench-'))
let server: ChildProcess | undefined

async function startGateway(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['src/main.ts'], {
    env: { ...process.env, DATA_DIR: dataDir, SANDBOX: '1', PORT: String(PORT), LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)))
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('wagate listening')) resolve()
    })
  })
  return child
}

async function stopGateway(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

const rssOf = async (pid: number): Promise<number> => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024
}

let key = ''
// biome-ignore lint/suspicious/noExplicitAny: the bench reads a few known fields of JSON answers
const api = async (method: string, path: string, body?: unknown): Promise<any> => {
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { 'x-api-key': key, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
  return response.status === 204 ? undefined : response.json()
}
const readyCount = async () => (await api('GET', '/sessions?status=ready&limit=1')).total as number
const until = async (probe: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

try {
  server = await startGateway()
  key = (await readFile(join(dataDir, 'admin-api-key'), 'utf8')).trim()
  await new Promise((resolve) => setTimeout(resolve, 500))
  const rssIdle = await rssOf(server.pid ?? 0)

  // Link N sandbox sessions, a few at a time, through the API as a user would.
  const linkOne = async (i: number) => {
    const name = `bench-${i}`
    await api('POST', '/sessions', { name, sandbox: true })
    let qr: { value: string } | undefined
    await until(async () => {
      const response = await fetch(`${base}/api/v1/sessions/${name}/qr`, { headers: { 'x-api-key': key } })
      if (response.ok) qr = (await response.json()) as { value: string }
      return response.ok
    }, 20_000)
    await api('POST', '/sandbox/scan', { qr: qr?.value, phoneNumber: String(15550200000 + i) })
  }
  for (let i = 0; i < SESSIONS; i += 10) {
    await Promise.all(Array.from({ length: Math.min(10, SESSIONS - i) }, (_, j) => linkOne(i + j)))
  }
  await until(async () => (await readyCount()) === SESSIONS, 120_000)
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const rssReady = await rssOf(server.pid ?? 0)

  // Reads: GET /sessions/{id} with key auth, keep-alive connections, for SECONDS.
  const { items } = await api('GET', '/sessions?limit=1')
  const path = `/api/v1/sessions/${items[0].id}`
  const pool = new Pool(base, { connections: CONNECTIONS, pipelining: 1 })
  const latencies: number[] = []
  let failures = 0
  const deadline = performance.now() + SECONDS * 1000
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        const started = performance.now()
        const { statusCode, body } = await pool.request({
          method: 'GET',
          path,
          headers: { 'x-api-key': key },
        })
        await body.dump()
        if (statusCode !== 200) failures++
        latencies.push(performance.now() - started)
      }
    }),
  )
  await pool.close()
  latencies.sort((a, b) => a - b)
  const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0

  // Restart: every session comes back from stored credentials, no QR.
  await stopGateway(server)
  const restartAt = performance.now()
  server = await startGateway()
  await until(async () => (await readyCount().catch(() => 0)) === SESSIONS, 120_000)
  const restoreMs = performance.now() - restartAt

  const rows = [
    [
      `GET /api/v1/sessions/{id} with key auth (${CONNECTIONS} connections, ${SECONDS} s)`,
      `${Math.round(latencies.length / SECONDS)} req/s`,
    ],
    ['… latency p50 / p99', `${p(0.5).toFixed(2)} ms / ${p(0.99).toFixed(2)} ms`],
    ['… non-200 answers', String(failures)],
    [
      `${SESSIONS} sandbox sessions ready again after a restart (process start included)`,
      `${(restoreMs / 1000).toFixed(2)} s`,
    ],
    [
      `memory per ready session (RSS delta / ${SESSIONS})`,
      `${((rssReady - rssIdle) / SESSIONS / 1024 / 1024).toFixed(2)} MiB`,
    ],
    [
      'gateway RSS idle → with sessions ready',
      `${(rssIdle / 2 ** 20).toFixed(0)} MiB → ${(rssReady / 2 ** 20).toFixed(0)} MiB`,
    ],
  ]
  console.log(
    `Gateway benchmark — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
  )
  console.log('| measure | result |\n|---|---|')
  for (const [measure, result] of rows) console.log(`| ${measure} | ${result} |`)
} finally {
  if (server) await stopGateway(server).catch(() => undefined)
  await rm(dataDir, { recursive: true, force: true })
}
