import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { proto } from '@whiskeysockets/baileys'
import { storedMessageContent } from '../../src/messages/stored-message-content.ts'
import { openDatabase } from '../../src/store/db.ts'
import { createOrganization, createSession, messageRecord, tick, useStore } from '../store/fixtures.ts'

const PN = '15550003333@s.whatsapp.net'
const LID = '90003333@lid'

const dataDir = await mkdtemp(join(tmpdir(), 'wagate-get-message-'))
after(() => rm(dataDir, { recursive: true, force: true }))

/*
 * Baileys' getMessage, as the engine is wired with it: what a recipient's retry receipt
 * or a poll vote needs, found in the real store whichever address the chat is named by.
 */
describe('the stored message Baileys asks for (retries, poll votes)', () => {
  const context = useStore(() => openDatabase({ dataDir }))

  /** A message we sent, stored in `chatJid` with its encoded content. */
  async function sent(sessionId: string, chatJid: string, text: string, waId = `3EB0${tick()}`) {
    const record = messageRecord(sessionId, {
      waId,
      chatJid,
      fromMe: true,
      senderJid: null,
      pushName: null,
      text,
      status: 'sent',
      raw: Buffer.from(proto.Message.encode({ conversation: text }).finish()).toString('base64'),
    })
    await context.repositories.messages.insertIfNew(record)
    return record
  }
  async function session(options: { mapped: boolean }) {
    const { id } = await createSession(context, await createOrganization(context))
    if (options.mapped) await context.repositories.contacts.mapLid(id, LID, PN)
    return id
  }
  const ask = (sessionId: string, key: { id?: string | null; remoteJid?: string | null }) =>
    storedMessageContent(context.repositories, sessionId, key)

  it('should find a message stored under the phone chat when asked by LID', async () => {
    const sessionId = await session({ mapped: true })
    const message = await sent(sessionId, PN, 'sent to the number')
    const content = await ask(sessionId, { id: message.waId, remoteJid: LID })
    assert.equal(content?.conversation, 'sent to the number')
  })

  it('should find a message stored under the LID chat when asked by phone JID', async () => {
    const sessionId = await session({ mapped: true })
    const message = await sent(sessionId, LID, 'sent to the LID')
    const content = await ask(sessionId, { id: message.waId, remoteJid: PN })
    assert.equal(content?.conversation, 'sent to the LID')
  })

  it('should find it by its id in the session when the LID map does not know the chat yet', async () => {
    const sessionId = await session({ mapped: false })
    const message = await sent(sessionId, PN, 'mapping unknown')
    const content = await ask(sessionId, { id: message.waId, remoteJid: LID })
    assert.equal(content?.conversation, 'mapping unknown')
  })

  it('should accept a device-qualified address as the hint', async () => {
    const sessionId = await session({ mapped: true })
    const message = await sent(sessionId, PN, 'to any device')
    const content = await ask(sessionId, { id: message.waId, remoteJid: '90003333:4@lid' })
    assert.equal(content?.conversation, 'to any device')
  })

  it('should prefer the hinted chat, by either of its addresses, when the id is in two chats', async () => {
    const sessionId = await session({ mapped: true })
    const waId = `3EB0${tick()}`
    await sent(sessionId, PN, 'in the hinted chat', waId)
    await sent(sessionId, '15550004444@s.whatsapp.net', 'elsewhere, and newer', waId)
    assert.equal((await ask(sessionId, { id: waId, remoteJid: LID }))?.conversation, 'in the hinted chat')
    assert.equal((await ask(sessionId, { id: waId, remoteJid: PN }))?.conversation, 'in the hinted chat')
  })

  it('should not find another session’s message, an unknown id, or a key without an id', async () => {
    const owner = await session({ mapped: true })
    const other = await session({ mapped: true })
    const message = await sent(owner, PN, 'not yours')
    assert.equal(await ask(other, { id: message.waId, remoteJid: PN }), undefined)
    assert.equal(await ask(owner, { id: 'NOPE', remoteJid: PN }), undefined)
    assert.equal(await ask(owner, { remoteJid: PN }), undefined)
  })
})
