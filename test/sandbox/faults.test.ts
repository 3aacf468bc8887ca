import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { SimUser } from '../../src/sandbox/network.ts'
import { SandboxServer } from '../../src/sandbox/server.ts'
import { TestClient } from '../support/baileys-client.ts'

const KEEP_ALIVE_MS = 1_000

describe('sandbox faults and offline replay', () => {
  let sandbox: SandboxServer
  let dave: SimUser
  let phone = 15550005000
  const clients: TestClient[] = []

  /** A freshly linked client with a short keep-alive, so silence is noticed quickly. */
  async function linked(): Promise<{ client: TestClient; account: string }> {
    const client = new TestClient(sandbox, { keepAliveIntervalMs: KEEP_ALIVE_MS })
    clients.push(client)
    const account = String(++phone)
    await client.linkByQr(account)
    return { client, account }
  }

  before(async () => {
    sandbox = await new SandboxServer({ seed: 31 }).listen()
    dave = sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550005999', pushName: 'Dave' })
  })
  after(async () => {
    for (const c of clients) await c.end()
    await sandbox.close()
  })

  for (const [kind, expected] of [
    ['drop', 428],
    ['conflict', 440],
    ['restart-required', 515],
    ['logout', 401],
  ] as const) {
    it(`closes the client with ${expected} on a ${kind} fault`, async () => {
      const { client, account } = await linked()
      const closed = client.waitForClose()
      const { affectedConnections } = sandbox.injectFault({ kind, phoneNumber: account })
      assert.equal(affectedConnections, 1)
      assert.equal(await closed, expected)
    })
  }

  it('makes a logged-out device fail its next login with 401', async () => {
    const { client, account } = await linked()
    const closed = client.waitForClose()
    sandbox.injectFault({ kind: 'logout', phoneNumber: account })
    await closed
    client.connect()
    assert.equal(await client.waitForClose(), 401)
  })

  it('times the client out with 408 when the server goes silent', async () => {
    const { client, account } = await linked()
    const closed = client.waitForClose(KEEP_ALIVE_MS * 15)
    sandbox.injectFault({ kind: 'silence', phoneNumber: account })
    assert.equal(await closed, 408)
  })

  it('slows every answer by the requested delay', async () => {
    const { client, account } = await linked()
    const fast = Date.now()
    await client.socket.groupFetchAllParticipating()
    const baseline = Date.now() - fast
    sandbox.injectFault({ kind: 'slow', phoneNumber: account, delayMs: 300 })
    const slow = Date.now()
    await client.socket.groupFetchAllParticipating()
    assert.ok(Date.now() - slow >= 300, `expected ≥300 ms, baseline ${baseline} ms`)
    sandbox.injectFault({ kind: 'slow', phoneNumber: account, delayMs: 0 })
  })

  it('leaves the client hanging without a close event when the upgrade is refused with 403', async () => {
    const { client } = await linked()
    await client.end()
    sandbox.injectFault({ kind: 'refuse-upgrade', status: 403 })
    try {
      const refusedBefore = sandbox.refusedUpgrades
      client.connect()
      const outcome = await Promise.race([
        client.waitFor(
          'connection.update',
          (u) => u.connection === 'open' || u.connection === 'close',
          2_000,
        ),
        new Promise((resolve) => setTimeout(() => resolve('hung'), 1_500)),
      ])
      assert.equal(outcome, 'hung')
      assert.equal(sandbox.refusedUpgrades, refusedBefore + 1)
    } finally {
      sandbox.injectFault({ kind: 'refuse-upgrade', status: null })
      await client.end()
    }
  })

  it('replays messages sent while the client was away as append, each once, in order', async () => {
    const { client, account } = await linked()
    const closed = client.waitForClose()
    sandbox.injectFault({ kind: 'drop', phoneNumber: account })
    await closed
    const ids: string[] = []
    for (const text of ['while away 1', 'while away 2', 'while away 3']) {
      ids.push((await sandbox.sendAs({ from: dave.phoneNumber, to: account, content: { text } })).id)
    }
    assert.equal(sandbox.router.pendingCount(sandbox.network.getUser(account), 1), 3)
    const seen: { id: string; type: string; text: string }[] = []
    client.connect()
    client.socket.ev.on('messages.upsert', ({ messages, type }) => {
      for (const m of messages) {
        if (m.key.fromMe || !m.message?.conversation) continue
        seen.push({ id: m.key.id ?? '', type, text: m.message.conversation })
      }
    })
    await client.waitFor('connection.update', (u) => u.receivedPendingNotifications === true)
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.deepEqual(
      seen.map((s) => s.id),
      ids,
    )
    assert.ok(seen.every((s) => s.type === 'append'))
  })

  it('holds what the client sends to an offline phone and delivers it when the phone returns', async () => {
    const { client } = await linked()
    await sandbox.router.setOnline(dave, false)
    const before = dave.received.length
    const sent = await client.sendAndRemember(dave.jid, { text: 'are you there?' })
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal(dave.received.length, before, 'nothing reaches an offline phone')
    assert.equal(sandbox.router.heldCount(dave), 1)
    await sandbox.router.setOnline(dave, true)
    assert.equal(dave.received.at(-1)?.id, sent?.key.id)
  })
})
