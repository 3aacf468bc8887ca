import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { SimGroup, SimUser } from '../../src/sandbox/network.ts'
import { SandboxServer } from '../../src/sandbox/server.ts'
import { TestClient } from '../support/baileys-client.ts'
import { eventually } from '../support/wait.ts'

const ACCOUNT = '15550004001'

describe('sandbox groups with a plain Baileys client', () => {
  let sandbox: SandboxServer
  let client: TestClient
  let bob: SimUser
  let carol: SimUser
  let group: SimGroup

  before(async () => {
    sandbox = await new SandboxServer({ seed: 21 }).listen()
    client = new TestClient(sandbox)
    await client.linkByQr(ACCOUNT)
    bob = sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550004101', pushName: 'Bob' })
    carol = sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550004102', pushName: 'Carol' })
    group = sandbox.createGroup({
      subject: 'Team',
      creator: bob.phoneNumber,
      participants: [ACCOUNT, carol.phoneNumber],
      names: { [carol.phoneNumber]: 'Carol (ops)' },
    })
  })
  after(async () => {
    await client.end()
    await sandbox.close()
  })

  it('answers group metadata with LID-addressed members and their roles', async () => {
    const metadata = await client.socket.groupMetadata(group.jid)
    assert.equal(metadata.subject, 'Team')
    assert.equal(metadata.addressingMode, 'lid')
    const bobEntry = metadata.participants.find((p) => p.id === bob.lidJid)
    assert.equal(bobEntry?.admin, 'superadmin')
    assert.equal(metadata.participants.length, 3)
  })

  it('has every member decrypt what the client sends to the group, with sender keys', async () => {
    for (const text of ['hello team', 'second message, sender key already known']) {
      const sent = await client.sendAndRemember(group.jid, { text })
      for (const member of [bob, carol]) {
        const got = await eventually(
          () => member.received.find((m) => m.id === sent?.key.id),
          `${member.pushName} to decrypt`,
        )
        assert.equal(got.text, text)
        assert.equal(got.chat, group.jid)
      }
      assert.equal(group.received.filter((m) => m.id === sent?.key.id).length, 1)
    }
  })

  it('delivers a member message to the client with the author as participant and phone as alternate', async () => {
    const upsert = client.waitFor('messages.upsert', (u) =>
      u.messages.some((m) => m.key.remoteJid === group.jid && !m.key.fromMe),
    )
    const { id } = await sandbox.sendAs({
      from: carol.phoneNumber,
      to: group.jid,
      content: { text: 'hi from carol' },
    })
    const message = (await upsert).messages.find((m) => m.key.id === id)
    assert.equal(message?.message?.conversation, 'hi from carol')
    assert.equal(message?.key.participant, carol.lidJid)
    assert.equal(message?.key.participantAlt, carol.jid)
    assert.equal(message?.pushName, 'Carol (ops)', 'the name Carol uses in this group')
  })

  it('has every member decrypt each kind the client sends to the group', async () => {
    const first = await client.sendAndRemember(group.jid, { text: 'base' })
    const key = { remoteJid: group.jid, id: first?.key.id, fromMe: true, participant: client.socket.user?.id }
    const image = Buffer.from('group picture bytes')
    const kinds: [string, Parameters<TestClient['sendAndRemember']>[1], object?][] = [
      ['extendedTextMessage', { text: 'replying in the group' }, { quoted: first }],
      ['locationMessage', { location: { degreesLatitude: 1.5, degreesLongitude: 2.5 } }],
      [
        'contactMessage',
        {
          contacts: {
            displayName: 'Zed',
            contacts: [{ vcard: 'BEGIN:VCARD\nVERSION:3.0\nFN:Zed\nEND:VCARD' }],
          },
        },
      ],
      ['reactionMessage', { react: { text: '🎉', key } }],
      ['pollCreationMessageV3', { poll: { name: 'Pizza?', values: ['yes', 'no'], selectableCount: 1 } }],
      // a thumbnail given up front: no image library needed to make one
      [
        'imageMessage',
        { image, mimetype: 'image/jpeg', jpegThumbnail: Buffer.from('thumb').toString('base64') },
      ],
      ['protocolMessage', { edit: key, text: 'base (edited)' }],
      ['protocolMessage', { delete: key }],
    ]
    for (const [kind, content, options] of kinds) {
      const sent = await client.sendAndRemember(group.jid, content, options)
      for (const member of [bob, carol]) {
        const got = await eventually(
          () => member.received.find((m) => m.id === sent?.key.id),
          `${member.pushName} to get ${kind}`,
        )
        assert.ok(got.message[kind as keyof typeof got.message], `${member.pushName} decrypted a ${kind}`)
      }
    }
  })

  it('delivers each kind a member sends to the group to the client', async () => {
    const base = await sandbox.sendAs({ from: bob.phoneNumber, to: group.jid, content: { text: 'from bob' } })
    const contents: [string, Parameters<SandboxServer['sendAs']>[0]['content'], string?][] = [
      ['extendedTextMessage', { text: 'bob replies' }, base.id],
      ['locationMessage', { location: { latitude: 3, longitude: 4 } }],
      [
        'contactMessage',
        { contact: { displayName: 'Yan', vcard: 'BEGIN:VCARD\nVERSION:3.0\nFN:Yan\nEND:VCARD' } },
      ],
      ['reactionMessage', { reaction: { messageId: base.id, emoji: '👀' } }],
      ['pollCreationMessageV3', { poll: { name: 'Tea?', options: ['a', 'b'] } }],
      [
        'imageMessage',
        {
          media: { kind: 'image', data: Buffer.from('bob image').toString('base64'), mimetype: 'image/png' },
        },
      ],
      ['protocolMessage', { edit: { messageId: base.id, text: 'from bob (edited)' } }],
      ['protocolMessage', { delete: { messageId: base.id } }],
    ]
    for (const [kind, content, replyTo] of contents) {
      const seen = new Promise<boolean>((resolve) => {
        const listener = ({
          messages,
        }: {
          messages: { key: { remoteJid?: string | null }; message?: object | null }[]
        }) => {
          const match = messages.find((m) => m.key.remoteJid === group.jid && m.message && kind in m.message)
          if (match) {
            client.socket.ev.off('messages.upsert', listener)
            resolve(true)
          }
        }
        client.socket.ev.on('messages.upsert', listener)
      })
      await sandbox.sendAs({ from: bob.phoneNumber, to: group.jid, content, replyTo })
      assert.equal(await seen, true, `the client received the ${kind}`)
    }
  })

  it('creates a group, renames it and manages participants, reflected in the sandbox', async () => {
    const created = await client.socket.groupCreate('Project', [bob.jid])
    const made = sandbox.network.getGroup(created.id)
    assert.equal(made.subject, 'Project')
    assert.equal(made.participants.get(ACCOUNT), 'superadmin')
    await client.socket.groupUpdateSubject(created.id, 'Project X')
    assert.equal(made.subject, 'Project X')
    await client.socket.groupUpdateDescription(created.id, 'what we build')
    assert.equal(made.description, 'what we build')
    const added = await client.socket.groupParticipantsUpdate(created.id, [carol.jid], 'add')
    assert.equal(added[0]?.status, '200')
    assert.equal(made.participants.get(carol.phoneNumber), 'member')
    const again = await client.socket.groupParticipantsUpdate(created.id, [carol.jid], 'add')
    assert.equal(again[0]?.status, '409')
    await client.socket.groupParticipantsUpdate(created.id, [carol.jid], 'promote')
    assert.equal(made.participants.get(carol.phoneNumber), 'admin')
    await client.socket.groupParticipantsUpdate(created.id, [bob.jid], 'remove')
    assert.equal(made.participants.has(bob.phoneNumber), false)
    const code = await client.socket.groupInviteCode(created.id)
    const revoked = await client.socket.groupRevokeInvite(created.id)
    assert.ok(code && revoked && code !== revoked)
    await client.socket.groupLeave(created.id)
    assert.equal(made.participants.has(ACCOUNT), false)
  })

  it('refuses participant changes from a plain member', async () => {
    await assert.rejects(client.socket.groupParticipantsUpdate(group.jid, [carol.jid], 'remove'))
    assert.equal(group.participants.has(carol.phoneNumber), true)
  })
})
