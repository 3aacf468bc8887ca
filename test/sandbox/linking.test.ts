import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { SandboxServer } from '../../src/sandbox/server.ts'
import { TestClient } from '../support/baileys-client.ts'

describe('sandbox linking', () => {
  let sandbox: SandboxServer
  const clients: TestClient[] = []
  const client = () => {
    const c = new TestClient(sandbox)
    clients.push(c)
    return c
  }

  before(async () => {
    sandbox = await new SandboxServer({ seed: 7 }).listen()
  })
  after(async () => {
    for (const c of clients) await c.end()
    await sandbox.close()
  })

  it('links a client by QR, restarts with 515 and opens with the account identity', async () => {
    const c = client()
    const qr = await c.connectForQr()
    const closed = c.waitForClose()
    const linked = sandbox.scan(qr, '15550001001')
    assert.equal(await closed, 515)
    c.connect()
    await c.waitForOpen()
    assert.equal(c.socket.user?.id, `15550001001:${linked.deviceId}@s.whatsapp.net`)
    const account = sandbox.network.getUser('15550001001')
    assert.equal(c.socket.user?.lid, `${account.lid}:${linked.deviceId}@lid`)
    assert.ok(account.devices.get(linked.deviceId)?.bundle, 'the client uploaded its prekeys after login')
  })

  it('logs in again from saved credentials without a new QR', async () => {
    const c = client()
    await c.linkByQr('15550001002')
    await c.end()
    c.auth.reload()
    c.connect()
    const update = await c.waitFor('connection.update', (u) => u.connection === 'open' || Boolean(u.qr))
    assert.equal(update.connection, 'open', 'a restart must not ask for a QR')
  })

  it('refuses a QR nobody issued', () => {
    assert.throws(() => sandbox.scan('AAAA,BBBB,CCCC,DDDD', '15550001003'), { code: 'not_found' })
  })
})

describe('sandbox pairing-code linking', () => {
  let sandbox: SandboxServer
  const clients: TestClient[] = []

  before(async () => {
    sandbox = await new SandboxServer({ seed: 8 }).listen()
  })
  after(async () => {
    for (const c of clients) await c.end()
    await sandbox.close()
  })

  /** Connects, and on the first QR (the earliest Baileys allows it) asks for a code. */
  async function requestCode(c: TestClient, phoneNumber: string): Promise<string> {
    c.connect()
    await c.waitFor('connection.update', (u) => Boolean(u.qr))
    return c.socket.requestPairingCode(phoneNumber)
  }

  it('links by the code the client shows, typed on the phone, then logs in after 515', async () => {
    const c = new TestClient(sandbox)
    clients.push(c)
    const code = await requestCode(c, '15550002001')
    assert.match(code, /^[1-9A-HJ-NP-TV-Z]{8}$/)
    const closed = c.waitForClose()
    const linked = await sandbox.enterPairingCode('+1 555 000 2001', `${code.slice(0, 4)}-${code.slice(4)}`)
    assert.equal(await closed, 515)
    c.connect()
    await c.waitForOpen()
    assert.equal(c.socket.user?.id, `15550002001:${linked.deviceId}@s.whatsapp.net`)
  })

  it('rejects a wrong code and still links when the right one is typed next', async () => {
    const c = new TestClient(sandbox)
    clients.push(c)
    const code = await requestCode(c, '15550002002')
    const wrong = code.startsWith('A') ? `B${code.slice(1)}` : `A${code.slice(1)}`
    await assert.rejects(sandbox.enterPairingCode('15550002002', wrong), { code: 'wrong_code' })
    const closed = c.waitForClose()
    await sandbox.enterPairingCode('15550002002', code)
    assert.equal(await closed, 515)
    c.connect()
    await c.waitForOpen()
  })

  it('says so when nobody waits for a code for that number, and when the code is malformed', async () => {
    await assert.rejects(sandbox.enterPairingCode('15550002999', 'ABCDEFGH'), { code: 'not_found' })
    await assert.rejects(sandbox.enterPairingCode('15550002999', 'ABC'), { code: 'invalid_request' })
  })
})

describe('sandbox first-link history sync', () => {
  it('sends the configured chats and messages once, on the first login of a new device', async () => {
    const sandbox = await new SandboxServer({ seed: 9, history: { chats: 2, messagesPerChat: 3 } }).listen()
    const c = new TestClient(sandbox)
    try {
      sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550002101', pushName: 'Erin' })
      sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550002102', pushName: 'Femi' })
      const qr = await c.connectForQr()
      const closed = c.waitForClose()
      sandbox.scan(qr, '15550002100')
      await closed
      c.connect()
      const history = await c.waitFor('messaging-history.set')
      assert.deepEqual(history.chats.map((chat) => chat.id).sort(), [
        '15550002101@s.whatsapp.net',
        '15550002102@s.whatsapp.net',
      ])
      assert.equal(history.messages.length, 6)
      assert.ok(history.messages.some((m) => m.message?.conversation === 'history 1.1'))
      assert.equal(sandbox.network.getUser('15550002100').devices.get(1)?.historySent, true)
    } finally {
      await c.end()
      await sandbox.close()
    }
  })
})
