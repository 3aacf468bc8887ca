import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { proto, type WAMessage } from '@whiskeysockets/baileys'
import type { SimUser } from '../../src/sandbox/network.ts'
import { SandboxServer } from '../../src/sandbox/server.ts'
import { TestClient } from '../support/baileys-client.ts'
import { eventually } from '../support/wait.ts'

const ACCOUNT = '15550003001'

describe('sandbox 1:1 messaging with a plain Baileys client', () => {
  let sandbox: SandboxServer
  let client: TestClient
  let alice: SimUser

  before(async () => {
    sandbox = await new SandboxServer({
      seed: 11,
      receipts: { deliveryDelayMs: 10, readDelayMs: 30 },
    }).listen()
    alice = sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550003101', pushName: 'Alice' })
    client = new TestClient(sandbox)
    await client.linkByQr(ACCOUNT)
  })
  after(async () => {
    await client.end()
    await sandbox.close()
  })

  /** Sends as Alice and resolves with what the client decrypted. */
  async function fromAlice(
    content: Parameters<SandboxServer['sendAs']>[0]['content'],
    replyTo?: string,
  ): Promise<WAMessage> {
    const upsert = client.waitFor('messages.upsert', (u) => u.messages.some((m) => !m.key.fromMe))
    const { id } = await sandbox.sendAs({ from: alice.phoneNumber, to: ACCOUNT, content, replyTo })
    const { messages } = await upsert
    const message = messages.find((m) => m.key.id === id)
    assert.ok(message, `the client received message ${id}`)
    return message
  }

  /** Sends from the client and resolves with what Alice's phone decrypted. */
  async function toAlice(content: Parameters<TestClient['sendAndRemember']>[1], options?: object) {
    const sent = await client.sendAndRemember(alice.jid, content, options)
    const id = sent?.key.id
    return eventually(() => alice.received.find((m) => m.id === id), `Alice to decrypt ${id}`)
  }

  it('delivers a contact text in LID addressing with the phone number as the alternate JID', async () => {
    const message = await fromAlice({ text: 'hello from alice' })
    assert.equal(message.message?.conversation, 'hello from alice')
    assert.equal(message.key.remoteJid, alice.lidJid)
    assert.equal(message.key.remoteJidAlt, alice.jid)
    assert.equal(message.pushName, 'Alice')
  })

  it('lets the contact reply, locate, share a contact, react, poll, edit and delete', async () => {
    const original = await fromAlice({ text: 'first' })
    const reply = await fromAlice({ text: 'replying' }, original.key.id ?? undefined)
    assert.equal(reply.message?.extendedTextMessage?.contextInfo?.stanzaId, original.key.id)
    assert.equal(reply.message?.extendedTextMessage?.contextInfo?.quotedMessage?.conversation, 'first')

    const location = await fromAlice({ location: { latitude: 52.52, longitude: 13.4, name: 'Berlin' } })
    assert.equal(location.message?.locationMessage?.degreesLatitude, 52.52)
    assert.equal(location.message?.locationMessage?.name, 'Berlin')

    const vcard = 'BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nTEL;waid=15550003102:+1 555 000 3102\nEND:VCARD'
    const card = await fromAlice({ contact: { displayName: 'Bob', vcard } })
    assert.equal(card.message?.contactMessage?.vcard, vcard)

    const reacted = client.waitFor('messages.reaction')
    await sandbox.sendAs({
      from: alice.phoneNumber,
      to: ACCOUNT,
      content: { reaction: { messageId: original.key.id ?? '', emoji: '👍' } },
    })
    const [reaction] = await reacted
    assert.equal(reaction?.key.id, original.key.id)
    assert.equal(reaction?.reaction.text, '👍')

    const poll = await fromAlice({ poll: { name: 'Lunch?', options: ['yes', 'no'] } })
    assert.deepEqual(
      poll.message?.pollCreationMessageV3?.options?.map((o) => o.optionName),
      ['yes', 'no'],
    )

    const edited = client.waitFor('messages.update', (us) => us.some((u) => u.update.message?.editedMessage))
    await sandbox.sendAs({
      from: alice.phoneNumber,
      to: ACCOUNT,
      content: { edit: { messageId: original.key.id ?? '', text: 'first (edited)' } },
    })
    const [edit] = await edited
    assert.equal(edit?.key.id, original.key.id)
    assert.equal(edit?.update.message?.editedMessage?.message?.conversation, 'first (edited)')

    const revoked = client.waitFor('messages.update', (us) =>
      us.some((u) => u.update.messageStubType === proto.WebMessageInfo.StubType.REVOKE),
    )
    await sandbox.sendAs({
      from: alice.phoneNumber,
      to: ACCOUNT,
      content: { delete: { messageId: reply.key.id ?? '' } },
    })
    const [revoke] = await revoked
    assert.equal(revoke?.key.id, reply.key.id)
  })

  it('has the contact decrypt every kind the client sends', async () => {
    const text = await toAlice({ text: 'pong' })
    assert.equal(text.text, 'pong')
    const reply = await toAlice(
      { text: 'quoting' },
      {
        quoted: {
          key: { remoteJid: alice.jid, id: text.id, fromMe: true },
          message: { conversation: 'pong' },
        },
      },
    )
    assert.equal(reply.message.extendedTextMessage?.contextInfo?.stanzaId, text.id)
    const location = await toAlice({ location: { degreesLatitude: -33.86, degreesLongitude: 151.2 } })
    assert.equal(location.message.locationMessage?.degreesLongitude, 151.2)
    const vcard = 'BEGIN:VCARD\nVERSION:3.0\nFN:Carol\nEND:VCARD'
    const card = await toAlice({ contacts: { displayName: 'Carol', contacts: [{ vcard }] } })
    assert.equal(card.message.contactMessage?.vcard, vcard)
    const reaction = await toAlice({
      react: { text: '❤️', key: { remoteJid: alice.jid, id: text.id, fromMe: true } },
    })
    assert.equal(reaction.message.reactionMessage?.text, '❤️')
    const poll = await toAlice({ poll: { name: 'Tea?', values: ['green', 'black'], selectableCount: 1 } })
    assert.deepEqual(
      poll.message.pollCreationMessageV3?.options?.map((o) => o.optionName),
      ['green', 'black'],
    )
    const edit = await toAlice({ edit: { remoteJid: alice.jid, id: text.id, fromMe: true }, text: 'pong!' })
    const edited = edit.message.protocolMessage?.editedMessage
    assert.equal(edited?.conversation ?? edited?.extendedTextMessage?.text, 'pong!')
    const revoke = await toAlice({ delete: { remoteJid: alice.jid, id: text.id, fromMe: true } })
    assert.equal(revoke.message.protocolMessage?.type, proto.Message.ProtocolMessage.Type.REVOKE)
  })

  it('lets the client decrypt a vote on its poll with the poll secret', async () => {
    const sent = await client.sendAndRemember(alice.jid, {
      poll: { name: 'When?', values: ['now', 'later'], selectableCount: 1 },
    })
    await eventually(() => alice.received.find((m) => m.id === sent?.key.id), 'Alice to get the poll')
    const { decryptPollVote, jidNormalizedUser } = await import('@whiskeysockets/baileys')
    const upsert = client.waitFor('messages.upsert', (u) =>
      u.messages.some((m) => m.message?.pollUpdateMessage),
    )
    await sandbox.sendAs({
      from: alice.phoneNumber,
      to: ACCOUNT,
      content: { pollVote: { pollId: sent?.key.id ?? '', options: ['later'] } },
    })
    const vote = (await upsert).messages.find((m) => m.message?.pollUpdateMessage)?.message?.pollUpdateMessage
    assert.ok(vote?.vote)
    const decrypted = decryptPollVote(vote.vote, {
      pollCreatorJid: jidNormalizedUser(client.socket.user?.id),
      pollMsgId: sent?.key.id ?? '',
      pollEncKey: sent?.message?.messageContextInfo?.messageSecret as Uint8Array,
      voterJid: alice.jid,
    })
    const { sha256 } = await import('@whiskeysockets/baileys')
    assert.deepEqual(
      decrypted.selectedOptions?.map((o) => Buffer.from(o).toString('hex')),
      [sha256(Buffer.from('later')).toString('hex')],
    )
  })

  it('reports delivery, then read, for what the client sent', async () => {
    const statuses: number[] = []
    let id: string | undefined
    client.socket.ev.on('messages.update', (updates) => {
      for (const u of updates) if (u.key.id === id && u.update.status) statuses.push(u.update.status)
    })
    id = (await client.sendAndRemember(alice.jid, { text: 'did you read this?' }))?.key.id ?? undefined
    const { Status } = proto.WebMessageInfo
    await eventually(() => statuses.includes(Status.READ), 'the read receipt')
    assert.deepEqual(statuses, [Status.DELIVERY_ACK, Status.READ])
  })

  it('passes typing and online presence both ways', async () => {
    const typing = client.waitFor(
      'presence.update',
      (p) => p.presences[alice.lidJid]?.lastKnownPresence === 'composing',
    )
    sandbox.router.sendChatState(alice, sandbox.network.getUser(ACCOUNT), 'composing')
    await typing
    const online = client.waitFor('presence.update', (p) =>
      Object.values(p.presences).some((x) => x.lastKnownPresence === 'unavailable'),
    )
    await sandbox.router.setOnline(alice, false)
    await online
    await sandbox.router.setOnline(alice, true)
    await client.socket.sendPresenceUpdate('recording', alice.jid)
    await eventually(
      () =>
        sandbox.router.activity
          .get(alice.phoneNumber)
          ?.find((a) => a.kind === 'chatstate' && a.value === 'recording'),
      'the sandbox to record the client recording',
    )
  })
})
