import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { SandboxServer } from '../../src/sandbox/server.ts'
import { TestClient } from '../support/baileys-client.ts'
import { eventually } from '../support/wait.ts'

describe('a sandbox that keeps its world across restarts', () => {
  const cleanup: (() => Promise<void>)[] = []
  after(async () => {
    for (const step of cleanup.reverse()) await step()
  })

  it('lets a linked client log in again and keep messaging after the sandbox restarts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wagate-sandbox-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const statePath = join(dir, 'sandbox-state.json')
    const first = await new SandboxServer({ seed: 3, statePath }).listen()
    const client = new TestClient(first)
    cleanup.push(() => client.end())
    await client.linkByQr('15550006001')
    const erin = first.network.createUser({ kind: 'contact', phoneNumber: '15550006101', pushName: 'Erin' })
    const before = await client.sendAndRemember(erin.jid, { text: 'before the restart' })
    await eventually(() => erin.received.find((m) => m.id === before?.key.id), 'Erin to get the first text')
    await client.end()
    await first.close()
    assert.equal((await stat(statePath)).mode & 0o777, 0o600, 'the state file holds keys: owner only')

    const second = await new SandboxServer({ seed: 3, statePath }).listen()
    cleanup.push(() => second.close())
    const restoredErin = second.network.getUser(erin.phoneNumber)
    assert.equal(restoredErin.received.at(-1)?.text, 'before the restart')
    client.moveTo(second)
    client.connect()
    const update = await client.waitFor('connection.update', (u) => u.connection === 'open' || Boolean(u.qr))
    assert.equal(update.connection, 'open', 'the restored account still knows the linked device')

    const after = await client.sendAndRemember(erin.jid, { text: 'after the restart' })
    await eventually(
      () => restoredErin.received.find((m) => m.id === after?.key.id),
      'Erin to decrypt after the restart',
    )
    const upsert = client.waitFor('messages.upsert', (u) =>
      u.messages.some((m) => m.message?.conversation === 'welcome back'),
    )
    await second.sendAs({ from: erin.phoneNumber, to: '15550006001', content: { text: 'welcome back' } })
    await upsert
  })
})
