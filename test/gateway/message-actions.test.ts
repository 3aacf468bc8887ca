import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { proto } from '@whiskeysockets/baileys'
import type { SimUser } from '../../src/sandbox/network.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { createLinkedSession } from '../support/sessions.ts'
import { eventually } from '../support/wait.ts'

const S = '/api/v1/sessions/actions'

describe('editing, deleting and forwarding sent messages', () => {
  let gateway: TestGateway
  let dan: SimUser
  let eve: SimUser

  before(async () => {
    gateway = await startTestGateway()
    dan = gateway.sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550500101', pushName: 'Dan' })
    eve = gateway.sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550500102', pushName: 'Eve' })
    await createLinkedSession(gateway, 'actions', '15550500001')
    await gateway.request('PATCH', S, { body: { config: { pacing: { enabled: false } } } })
  })
  after(async () => {
    await gateway.close()
  })

  async function sent(text: string) {
    const accepted = (
      await gateway.request('POST', `${S}/messages`, {
        body: { to: dan.jid, type: 'text', text: { body: text } },
      })
    ).json()
    await eventually(() => dan.received.find((m) => m.id === accepted.waId), 'Dan to get it')
    await eventually(
      async () => (await gateway.request('GET', `${S}/messages/${accepted.id}`)).json().status !== 'pending',
      'sent',
    )
    return accepted as { id: string; waId: string }
  }

  it('edits a sent text: the contact gets the edit, the stored text changes', async () => {
    const original = await sent('typo hre')
    const response = await gateway.request('PATCH', `${S}/messages/${original.id}`, {
      body: { text: 'typo here' },
    })
    assert.equal(response.statusCode, 200, response.body)
    assert.equal(response.json().text, 'typo here')
    const edit = await eventually(
      () =>
        dan.received.find(
          (m) => m.message.protocolMessage?.type === proto.Message.ProtocolMessage.Type.MESSAGE_EDIT,
        ),
      'Dan to get the edit',
    )
    assert.equal(edit.message.protocolMessage?.key?.id, original.waId)
  })

  it('deletes a sent message for everyone', async () => {
    const original = await sent('oops')
    const response = await gateway.request('DELETE', `${S}/messages/${original.id}`)
    assert.equal(response.statusCode, 200, response.body)
    assert.equal(response.json().text, null)
    const revoke = await eventually(
      () =>
        dan.received.find(
          (m) =>
            m.message.protocolMessage?.type === proto.Message.ProtocolMessage.Type.REVOKE &&
            m.message.protocolMessage.key?.id === original.waId,
        ),
      'Dan to get the delete',
    )
    assert.ok(revoke)
  })

  it('forwards a stored message to another chat', async () => {
    const original = await sent('worth sharing')
    const response = await gateway.request('POST', `${S}/messages/${original.id}/forward`, {
      body: { to: eve.phoneNumber },
    })
    assert.equal(response.statusCode, 202, response.body)
    const got = await eventually(
      () => eve.received.find((m) => m.id === response.json().waId),
      'Eve to get the forward',
    )
    assert.equal(got.text, 'worth sharing')
  })

  it('refuses to edit a message the session did not send, and an empty edit', async () => {
    const { id } = await gateway.sandbox.sendAs({
      from: dan.phoneNumber,
      to: '15550500001',
      content: { text: 'from Dan' },
    })
    const stored = await eventually(async () => {
      const response = await gateway.request('GET', `${S}/messages/${id}`)
      return response.statusCode === 200 ? (response.json() as { id: string }) : undefined
    }, 'the inbound message stored')
    const refused = await gateway.request('PATCH', `${S}/messages/${stored.id}`, {
      body: { text: 'not mine' },
    })
    assert.equal(refused.statusCode, 409)
    const empty = await gateway.request('PATCH', `${S}/messages/${stored.id}`, { body: { text: '' } })
    assert.equal(empty.statusCode, 400)
    assert.equal(empty.json().error.details[0].path, 'body.text')
  })
})
