import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { proto } from '@whiskeysockets/baileys'
import { SandboxControlClient, SandboxControlError } from '../../src/sandbox/control-client.ts'
import type { ControlErrorBody } from '../../src/sandbox/control-schemas.ts'
import { type StandaloneSandbox, startStandaloneSandbox } from '../../src/sandbox/main.ts'
import { TestClient } from '../support/baileys-client.ts'
import { eventually } from '../support/wait.ts'

const ACCOUNT = '15550007001'
/** created by the first message it sends */
const NIA = '15550007101'
const NIA_JID = `${NIA}@s.whatsapp.net`

describe('sandbox control API', () => {
  let standalone: StandaloneSandbox
  let api: SandboxControlClient
  const clients: TestClient[] = []

  /** A raw request, for what the typed client would not let through. */
  async function raw(method: string, path: string, body?: unknown) {
    const response = await fetch(`${standalone.controlUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: typeof body === 'string' || body === undefined ? body : JSON.stringify(body),
    })
    assert.match(response.headers.get('content-type') ?? '', /application\/json/)
    return { status: response.status, body: (await response.json()) as ControlErrorBody }
  }

  before(async () => {
    standalone = await startStandaloneSandbox({ port: 0, wsPort: 0, seed: 41 })
    api = new SandboxControlClient(standalone.controlUrl)
  })
  after(async () => {
    for (const client of clients) await client.end()
    await standalone.close()
  })

  describe('happy', () => {
    it('describes the sandbox with its WebSocket URL, Noise root key, seed and counts', async () => {
      const info = await api.info()
      assert.equal(info.websocketUrl, standalone.sandbox.websocketUrl)
      assert.equal(info.noiseRootPublicKey, Buffer.from(standalone.sandbox.rootPublicKey).toString('base64'))
      assert.deepEqual(
        { ...info, websocketUrl: '', noiseRootPublicKey: '' },
        {
          websocketUrl: '',
          noiseRootPublicKey: '',
          seed: 41,
          accounts: 0,
          contacts: 0,
          groups: 0,
        },
      )
    })

    it('creates, lists and gets accounts with phone numbers normalized to digits', async () => {
      const created = await api.createAccount({ phoneNumber: '+1 555-000-7001', pushName: 'Shop' })
      assert.equal(created.phoneNumber, ACCOUNT)
      assert.equal(created.jid, `${ACCOUNT}@s.whatsapp.net`)
      assert.equal(created.lidJid, `${created.lid}@lid`)
      assert.deepEqual(created.linkedDevices, [])
      const generated = await api.createAccount()
      assert.match(generated.phoneNumber, /^1555\d{7}$/)
      const listed = await api.listAccounts()
      assert.deepEqual(listed.map((a) => a.phoneNumber).sort(), [ACCOUNT, generated.phoneNumber].sort())
      assert.deepEqual(await api.getAccount('+1 555 000 7001'), created)
    })

    it('creates contacts and changes their name, addressing and online state', async () => {
      const contact = await api.createContact({ pushName: 'Omar', addressing: 'pn' })
      assert.equal(contact.addressing, 'pn')
      assert.equal(contact.online, true)
      const updated = await api.updateContact(contact.phoneNumber, {
        pushName: 'Omar B',
        addressing: 'lid',
        online: false,
      })
      assert.deepEqual(
        { pushName: updated.pushName, addressing: updated.addressing, online: updated.online },
        { pushName: 'Omar B', addressing: 'lid', online: false },
      )
      assert.deepEqual(await api.getContact(contact.phoneNumber), updated)
      assert.ok((await api.listContacts()).some((c) => c.phoneNumber === contact.phoneNumber))
    })

    describe('with a Baileys client linked through POST /scan', () => {
      let client: TestClient

      it('links the client: the scan answers the device, then 515, reconnect and open', async () => {
        client = new TestClient(standalone.sandbox)
        clients.push(client)
        const qr = await client.connectForQr()
        const closed = client.waitForClose()
        const linked = await api.scan(qr, ACCOUNT)
        assert.equal(linked.phoneNumber, ACCOUNT)
        assert.equal(await closed, 515)
        client.connect()
        await client.waitForOpen()
        assert.equal(client.socket.user?.id, `${ACCOUNT}:${linked.deviceId}@s.whatsapp.net`)
        const account = await eventually(async () => {
          const found = await api.getAccount(ACCOUNT)
          return found.linkedDevices.some((d) => d.connected) && found
        }, 'the account to show its device connected')
        assert.deepEqual(
          account.linkedDevices.map((d) => d.deviceId),
          [linked.deviceId],
        )
      })

      it('delivers a POST /messages text from a new contact to the client, decrypted', async () => {
        const upsert = client.waitFor('messages.upsert', (u) => u.messages.some((m) => !m.key.fromMe))
        const sent = await api.sendMessage({
          from: `+${NIA}`,
          to: ACCOUNT,
          text: 'hello from Nia',
          pushName: 'Nia',
        })
        assert.ok(sent.timestamp > 0)
        const message = (await upsert).messages.find((m) => m.key.id === sent.id)
        assert.equal(message?.message?.conversation, 'hello from Nia')
        assert.equal(message?.pushName, 'Nia')
        assert.equal((await api.getContact(NIA)).pushName, 'Nia')
      })

      it('delivers a POST /messages image that the client downloads byte for byte', async () => {
        const bytes = Buffer.from('not really a jpeg, but bytes all the same: 0123456789')
        const upsert = client.waitFor('messages.upsert', (u) =>
          u.messages.some((m) => m.message?.imageMessage),
        )
        const sent = await api.sendMessage({
          from: NIA,
          to: ACCOUNT,
          media: {
            kind: 'image',
            data: bytes.toString('base64'),
            mimetype: 'image/jpeg',
            caption: 'a picture',
          },
        })
        const message = (await upsert).messages.find((m) => m.key.id === sent.id)
        assert.equal(message?.message?.imageMessage?.caption, 'a picture')
        assert.ok(message)
        assert.deepEqual(await client.download(message), bytes)
      })

      it("shows what the client sent in the contact's GET /inbox, decrypted", async () => {
        const sent = await client.sendAndRemember(NIA_JID, { text: 'pong' })
        const received = await eventually(
          async () => (await api.inbox(NIA)).find((m) => m.id === sent?.key.id),
          'Nia to decrypt the text',
        )
        assert.equal(received.text, 'pong')
        // Baileys sends plain text as an extendedTextMessage with a message secret
        assert.equal(received.kind, 'extendedTextMessage')
        assert.deepEqual(received.message.extendedTextMessage, { text: 'pong' })
        const context = received.message.messageContextInfo as { messageSecret?: string }
        assert.equal(Buffer.from(context.messageSecret ?? '', 'base64').length, 32, 'bytes come as base64')
        assert.match(received.from, new RegExp(`^${ACCOUNT}:\\d+@s\\.whatsapp\\.net$`))
      })

      it('turns a POST /receipts read into a READ status on the client', async () => {
        const sent = await client.sendAndRemember(NIA_JID, { text: 'did you read this?' })
        const id = sent?.key.id ?? ''
        await eventually(async () => (await api.inbox(NIA)).some((m) => m.id === id), 'Nia to receive it')
        const read = client.waitFor('messages.update', (updates) =>
          updates.some((u) => u.key.id === id && u.update.status === proto.WebMessageInfo.Status.READ),
        )
        await api.sendReceipt({ from: NIA, to: ACCOUNT, messageIds: [id], type: 'read' })
        await read
      })

      it('shows a POST /presence composing on the client as typing', async () => {
        const nia = await api.getContact(NIA)
        const typing = client.waitFor(
          'presence.update',
          (p) => p.presences[nia.lidJid]?.lastKnownPresence === 'composing',
        )
        await api.sendPresence({ from: NIA, to: ACCOUNT, state: 'composing' })
        await typing
      })

      it('lists the chat states the client sent to a contact in GET /activity', async () => {
        await client.socket.sendPresenceUpdate('composing', NIA_JID)
        const activity = await eventually(
          async () =>
            (await api.activity(NIA)).find((a) => a.kind === 'chatstate' && a.value === 'composing'),
          'the sandbox to record the client typing',
        )
        assert.equal(activity.to, NIA)
      })

      it('creates a group the contact then writes to through POST /messages', async () => {
        const group = await api.createGroup({ subject: 'Team', creator: NIA, participants: [ACCOUNT] })
        assert.match(group.jid, /^\d+@g\.us$/)
        assert.deepEqual(
          group.participants.map((p) => [p.phoneNumber, p.role]),
          [
            [NIA, 'superadmin'],
            [ACCOUNT, 'member'],
          ],
        )
        assert.deepEqual(await api.getGroup(group.jid), group)
        assert.deepEqual(await api.listGroups(), [group])
        const upsert = client.waitFor('messages.upsert', (u) =>
          u.messages.some((m) => m.key.remoteJid === group.jid),
        )
        const sent = await api.sendMessage({ from: NIA, to: group.jid, text: 'hi team' })
        const message = (await upsert).messages.find((m) => m.key.id === sent.id)
        assert.equal(message?.message?.conversation, 'hi team')
        assert.deepEqual(await api.groupInbox(group.jid), [])
      })

      it('closes the client with 440 on a POST /faults conflict', async () => {
        const closed = client.waitForClose()
        assert.deepEqual(await api.injectFault({ kind: 'conflict', phoneNumber: ACCOUNT }), {
          affectedConnections: 1,
        })
        assert.equal(await closed, 440)
      })
    })

    it('links a second client by the pairing code it shows, typed through POST /pairing-code', async () => {
      const client = new TestClient(standalone.sandbox)
      clients.push(client)
      client.connect()
      await client.waitFor('connection.update', (u) => Boolean(u.qr))
      const code = await client.socket.requestPairingCode('15550007004')
      const wrong = code.startsWith('A') ? `B${code.slice(1)}` : `A${code.slice(1)}`
      await assert.rejects(api.enterPairingCode('15550007004', wrong), { status: 422, code: 'wrong_code' })
      const closed = client.waitForClose()
      const linked = await api.enterPairingCode('+1 555 000 7004', `${code.slice(0, 4)}-${code.slice(4)}`)
      assert.equal(linked.phoneNumber, '15550007004')
      assert.equal(await closed, 515)
      client.connect()
      await client.waitForOpen()
      assert.equal(client.socket.user?.id, `15550007004:${linked.deviceId}@s.whatsapp.net`)
    })

    it('reads and replaces the receipt delays and the first-link history through /settings', async () => {
      assert.deepEqual(await api.getSettings(), {
        receipts: { deliveryDelayMs: 50, readDelayMs: null },
        history: { chats: 0, messagesPerChat: 0 },
      })
      const settings = {
        receipts: { deliveryDelayMs: null, readDelayMs: 250 },
        history: { chats: 3, messagesPerChat: 5 },
      }
      assert.deepEqual(await api.updateSettings(settings), settings)
      assert.deepEqual(await api.getSettings(), settings)
      assert.deepEqual(standalone.sandbox.router.receipts, settings.receipts)
      assert.deepEqual(standalone.sandbox.history, settings.history)
    })

    it('forgets every person and group on POST /reset', async () => {
      await api.reset()
      const info = await api.info()
      assert.deepEqual([info.accounts, info.contacts, info.groups], [0, 0, 0])
    })
  })

  describe('errors', () => {
    it('rejects a malformed phone number with 400 naming the field', async () => {
      const inBody = await raw('POST', '/contacts', { phoneNumber: '555-CALL-NOW' })
      assert.equal(inBody.status, 400)
      assert.equal(inBody.body.error.code, 'invalid_request')
      assert.equal(inBody.body.error.details?.[0]?.path, 'body.phoneNumber')
      assert.match(inBody.body.error.message, /phoneNumber: must be digits/)
      const inPath = await raw('GET', '/inbox/12345')
      assert.equal(inPath.status, 400)
      assert.deepEqual(inPath.body.error.details, [
        { path: 'params.phoneNumber', message: 'must have 6 to 15 digits' },
      ])
    })

    it('rejects a message with two content fields, naming both', async () => {
      const { status, body } = await raw('POST', '/messages', {
        from: NIA,
        to: ACCOUNT,
        text: 'hi',
        location: { latitude: 1, longitude: 2 },
      })
      assert.equal(status, 400)
      assert.match(body.error.message, /exactly one content field.*got text and location/)
    })

    it('rejects a message without any content field', async () => {
      const { status, body } = await raw('POST', '/messages', { from: NIA, to: ACCOUNT })
      assert.equal(status, 400)
      assert.match(body.error.message, /got none/)
    })

    it('answers 404 for an unknown contact through the typed client', async () => {
      await assert.rejects(api.getContact('15550009999'), (error: unknown) => {
        assert.ok(error instanceof SandboxControlError)
        assert.equal(error.status, 404)
        assert.equal(error.code, 'not_found')
        return true
      })
    })

    it('answers 404 for a QR that no client shows', async () => {
      const { status, body } = await raw('POST', '/scan', { qr: 'AAAA,BBBB,CCCC,DDDD', phoneNumber: ACCOUNT })
      assert.equal(status, 404)
      assert.equal(body.error.code, 'not_found')
    })

    it('rejects an unknown fault kind with 400 naming kind', async () => {
      const { status, body } = await raw('POST', '/faults', { kind: 'meteor', phoneNumber: ACCOUNT })
      assert.equal(status, 400)
      assert.equal(body.error.details?.[0]?.path, 'body.kind')
    })

    it('rejects unknown body fields and malformed JSON with 400', async () => {
      const typo = await raw('POST', '/accounts', { phonenumber: ACCOUNT })
      assert.equal(typo.status, 400)
      assert.match(typo.body.error.message, /phonenumber/)
      const broken = await raw('POST', '/accounts', '{"phoneNumber":')
      assert.equal(broken.status, 400)
      assert.equal(broken.body.error.code, 'invalid_request')
    })

    it('answers 409 when an account with that number already exists', async () => {
      await api.createAccount({ phoneNumber: '15550007002' })
      await assert.rejects(api.createAccount({ phoneNumber: '15550007002' }), {
        status: 409,
        code: 'conflict',
      })
    })

    it('answers unknown routes with a JSON 404', async () => {
      const { status, body } = await raw('GET', '/no/such/route')
      assert.equal(status, 404)
      assert.deepEqual(body, {
        error: { code: 'not_found', message: 'no route GET /no/such/route', requestId: body.error.requestId },
      })
      assert.ok(body.error.requestId, 'every error names its request')
    })
  })

  describe('security', () => {
    it('listens on loopback only by default', () => {
      assert.match(standalone.controlUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.match(standalone.websocketUrl, /^ws:\/\/127\.0\.0\.1:\d+\//)
    })

    it('never returns key material for an account', async () => {
      const account = await api.createAccount({ phoneNumber: '15550007003' })
      const user = standalone.sandbox.network.getUser('15550007003')
      const text = JSON.stringify(account)
      for (const key of [user.accountKey.private, user.accountKey.public]) {
        assert.ok(!text.includes(Buffer.from(key).toString('base64')), 'no account key in the JSON')
      }
      assert.deepEqual(Object.keys(account).sort(), [
        'jid',
        'lid',
        'lidJid',
        'linkedDevices',
        'phoneNumber',
        'pushName',
      ])
    })
  })
})
