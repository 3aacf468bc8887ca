/**
 * Sandbox benchmark: link and login latency, and how many inbound text messages per
 * second one sandbox pushes into one and into ten plain Baileys clients. The sandbox's own
 * cost (Signal encryption per message) is measured separately, so the table shows which
 * side — sandbox or client receive loop — is the bottleneck. Prints a Markdown table.
 *
 *   npm run bench            (or: npx node bench/sandbox.ts [messagesPerClient])
 */
import os from 'node:os'
import { SandboxServer } from '../src/sandbox/server.ts'
import { TestClient } from '../test/support/baileys-client.ts'

const MESSAGES = Number(process.argv[2] ?? 2000)
const LINK_RUNS = 5

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
const rate = (count: number, ms: number) => Math.round((count / ms) * 1000)

const sandbox = await new SandboxServer({
  seed: 99,
  receipts: { deliveryDelayMs: null, readDelayMs: null },
}).listen()
const contact = sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550009999', pushName: 'Bench' })
const clients: TestClient[] = []

async function linkOne(phoneNumber: string): Promise<{ client: TestClient; linkMs: number; openMs: number }> {
  const client = new TestClient(sandbox)
  clients.push(client)
  const qr = await client.connectForQr()
  const restarted = client.waitForClose()
  const scanAt = performance.now()
  sandbox.scan(qr, phoneNumber)
  await restarted
  const linkMs = performance.now() - scanAt
  const openAt = performance.now()
  client.connect()
  await client.waitForOpen()
  return { client, linkMs, openMs: performance.now() - openAt }
}

/** Sends `count` texts to each account and resolves when every client has received all of them. */
async function pushInto(
  targets: { client: TestClient; phoneNumber: string }[],
  count: number,
): Promise<number> {
  const done = targets.map(
    ({ client }) =>
      new Promise<void>((resolve) => {
        let received = 0
        client.socket.ev.on('messages.upsert', ({ messages }) => {
          received += messages.filter(
            (m) => !m.key.fromMe && m.message?.conversation?.startsWith('bench'),
          ).length
          if (received >= count) resolve()
        })
      }),
  )
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    for (const { phoneNumber } of targets) {
      await sandbox.sendAs({ from: contact.phoneNumber, to: phoneNumber, content: { text: `bench ${i}` } })
    }
  }
  await Promise.all(done)
  return performance.now() - start
}

/** The sandbox side alone: Signal-encrypting texts for one device, no client involved. */
async function encryptOnly(count: number): Promise<number> {
  const account = sandbox.network.getUser('15550008000')
  const target = `${account.phoneNumber}:1@s.whatsapp.net`
  const sender = sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550009998' })
  const bundle = account.devices.get(1)?.bundle
  if (!bundle) throw new Error('the first bench account has no keys')
  await sender.phone.ensureSession(target, { ...bundle, preKeys: [] })
  const start = performance.now()
  for (let i = 0; i < count; i++) await sender.phone.encrypt(target, { conversation: `bench ${i}` })
  return performance.now() - start
}

const links: { linkMs: number; openMs: number }[] = []
const linked: { client: TestClient; phoneNumber: string }[] = []
for (let i = 0; i < Math.max(LINK_RUNS, 10); i++) {
  const phoneNumber = String(15550008000 + i)
  const result = await linkOne(phoneNumber)
  if (i < LINK_RUNS) links.push(result)
  linked.push({ client: result.client, phoneNumber })
}
// let the first-link history syncs and prekey uploads settle before measuring throughput
await new Promise((resolve) => setTimeout(resolve, 1500))

const encryptMs = await encryptOnly(MESSAGES)
const oneMs = await pushInto(linked.slice(0, 1), MESSAGES)
const perClient = Math.max(1, Math.floor(MESSAGES / 10))
const tenMs = await pushInto(linked, perClient)

const rows = [
  ['time to link (scan → 515 restart), median of 5', `${median(links.map((l) => l.linkMs)).toFixed(1)} ms`],
  [
    'time to open (reconnect after 515 → open), median of 5',
    `${median(links.map((l) => l.openMs)).toFixed(1)} ms`,
  ],
  [`sandbox alone: Signal-encrypt ${MESSAGES} texts for one device`, `${rate(MESSAGES, encryptMs)} msg/s`],
  [`inbound texts into 1 client (${MESSAGES}, until all upserted)`, `${rate(MESSAGES, oneMs)} msg/s`],
  [
    `inbound texts into 10 clients (${perClient} each, until all upserted)`,
    `${rate(perClient * 10, tenMs)} msg/s`,
  ],
]
console.log(
  `Sandbox benchmark — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
)
console.log('| measure | result |\n|---|---|')
for (const [measure, result] of rows) console.log(`| ${measure} | ${result} |`)
console.log(
  `\nThe client's receive loop is the bottleneck when the inbound rate is far below the sandbox-alone rate.`,
)
for (const client of clients) await client.end()
await sandbox.close()
process.exit(0)
