import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { BaileysEventMap } from '@whiskeysockets/baileys'
import { SandboxControlClient, SandboxControlError } from '../../src/sandbox/control-client.ts'
import { type StandaloneSandbox, startStandaloneSandbox } from '../../src/sandbox/main.ts'
import { deserializeNetwork, serializeNetwork } from '../../src/sandbox/persistence.ts'
import { TestClient } from '../support/baileys-client.ts'

const ACCOUNT = '15550008001'
const OMAR = '15550008101'
const PIA = '15550008102'
const QUINN = '15550008103'

/**
 * What a plain Baileys client sees when people and the account's own phone change things
 * through the control API: group notifications, calls, and app state (chat archive, pin,
 * mute, read; address-book names).
 */
describe('sandbox state changes through the control API', () => {
  let standalone: StandaloneSandbox
  let api: SandboxControlClient
  let client: TestClient
  let groupJid: string

  before(async () => {
    standalone = await startStandaloneSandbox({ port: 0, wsPort: 0, seed: 43 })
    api = new SandboxControlClient(standalone.controlUrl)
    client = new TestClient(standalone.sandbox)
    await client.linkByQr(ACCOUNT)
    await api.createContact({ phoneNumber: OMAR, pushName: 'Omar' })
    await api.createContact({ phoneNumber: PIA, pushName: 'Pia' })
    await api.createContact({ phoneNumber: QUINN, pushName: 'Quinn' })
    groupJid = (await api.createGroup({ subject: 'Crew', creator: OMAR, participants: [ACCOUNT, PIA] })).jid
  })
  after(async () => {
    await client.end()
    await standalone.close()
  })

  describe('happy', () => {
    it('tells the client about a subject and settings a member changed, with the author', async () => {
      const omar = await api.getContact(OMAR)
      const subject = client.waitFor('groups.update', (u) => u.some((g) => g.subject === 'Crew 2'))
      const group = await api.updateGroup(groupJid, { by: OMAR, subject: 'Crew 2' })
      assert.equal(group.subject, 'Crew 2')
      const [update] = await subject
      assert.equal(update?.id, groupJid)
      assert.equal(update?.author, omar.lidJid)
      const locked = client.waitFor('groups.update', (u) => u.some((g) => g.announce === true))
      await api.updateGroup(groupJid, { by: OMAR, announce: true })
      await locked
      const metadata = await client.socket.groupMetadata(groupJid)
      assert.equal(metadata.subject, 'Crew 2')
      assert.equal(metadata.announce, true)
    })

    it('tells the client who was added and promoted, with both addresses', async () => {
      const quinn = await api.getContact(QUINN)
      const added = client.waitFor('group-participants.update', (u) => u.action === 'add')
      const result = await api.changeParticipants(groupJid, {
        by: OMAR,
        action: 'add',
        participants: [QUINN],
      })
      assert.deepEqual(result.results, [{ phoneNumber: QUINN, code: 200 }])
      const update = await added
      assert.equal(update.id, groupJid)
      assert.deepEqual(
        update.participants.map((p) => [p.id, p.phoneNumber]),
        [[quinn.lidJid, quinn.jid]],
      )
      const promoted = client.waitFor('group-participants.update', (u) => u.action === 'promote')
      await api.changeParticipants(groupJid, { by: OMAR, action: 'promote', participants: [QUINN] })
      assert.equal((await promoted).participants[0]?.id, quinn.lidJid)
      const role = (await api.getGroup(groupJid)).participants.find((p) => p.phoneNumber === QUINN)?.role
      assert.equal(role, 'admin')
    })

    it('rings the client with a call offer, video flagged, then times it out', async () => {
      const calls: BaileysEventMap['call'][number][] = []
      client.socket.ev.on('call', (list) => calls.push(...list))
      const offer = client.waitFor('call', (list) => list.some((c) => c.status === 'offer'))
      const { callId } = await api.call(PIA, { to: ACCOUNT, video: true, ringMs: 100 })
      const [call] = await offer
      assert.equal(call?.id, callId)
      assert.equal(call?.isVideo, true)
      assert.equal(call?.isGroup, false)
      assert.equal(call?.callerPn, `${PIA}@s.whatsapp.net`)
      await client.waitFor('call', (list) => list.some((c) => c.status === 'timeout'))
      assert.deepEqual(
        calls.map((c) => [c.id, c.status]),
        [
          [callId, 'offer'],
          [callId, 'timeout'],
        ],
      )
    })

    it('syncs a chat the phone archived, pinned, muted and marked read to the client', async () => {
      const chat = `${PIA}@s.whatsapp.net`
      const seen: BaileysEventMap['chats.update'] = []
      const listener = (updates: BaileysEventMap['chats.update']) => seen.push(...updates)
      client.socket.ev.on('chats.update', listener)
      try {
        const mutedUntil = Date.now() + 3_600_000
        const { applied } = await api.changeChat(ACCOUNT, PIA, {
          archived: true,
          pinned: true,
          mutedUntil,
          read: true,
        })
        assert.deepEqual(applied.map((a) => a.collection).sort(), [
          'regular_high',
          'regular_low',
          'regular_low',
          'regular_low',
        ])
        const has = (field: 'archived' | 'pinned' | 'muteEndTime' | 'unreadCount') =>
          seen.find((u) => u.id === chat && u[field] !== undefined)
        const until = Date.now() + 10_000
        while (!(has('archived') && has('pinned') && has('muteEndTime') && has('unreadCount'))) {
          if (Date.now() > until) assert.fail(`not every change arrived: ${JSON.stringify(seen)}`)
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
        assert.equal(has('archived')?.archived, true)
        assert.ok(has('pinned')?.pinned, 'pinned carries the time it was pinned')
        assert.equal(has('muteEndTime')?.muteEndTime, mutedUntil)
        assert.equal(has('unreadCount')?.unreadCount, 0)
      } finally {
        client.socket.ev.off('chats.update', listener)
      }
    })

    it('syncs a name the phone saved in its address book to the client, with the LID', async () => {
      const omar = await api.getContact(OMAR)
      const saved = client.waitFor('contacts.upsert', (list) => list.some((c) => c.name === 'Omar Said'))
      const { applied } = await api.saveToAddressBook(ACCOUNT, OMAR, { fullName: 'Omar Said' })
      assert.equal(applied[0]?.collection, 'critical_unblock_low')
      const contact = (await saved).find((c) => c.name === 'Omar Said')
      assert.equal(contact?.id, omar.jid)
      assert.equal(contact?.lid, omar.lidJid)
    })
  })

  describe('persistence', () => {
    it("keeps an account's app state across a save and load, so devices stay in step", () => {
      const account = standalone.sandbox.network.getUser(ACCOUNT)
      const restored = deserializeNetwork(serializeNetwork(standalone.sandbox.network)).getUser(ACCOUNT)
      assert.ok(account.appState && restored.appState)
      assert.deepEqual(Buffer.from(restored.appState.keyId), Buffer.from(account.appState.keyId))
      assert.deepEqual(Buffer.from(restored.appState.keyData), Buffer.from(account.appState.keyData))
      const versions = (appState: NonNullable<typeof account.appState>) =>
        [...appState.collections].map(([name, c]) => [name, c.state.version, c.patches.length])
      assert.deepEqual(versions(restored.appState), versions(account.appState))
      assert.ok(versions(account.appState).length >= 2, 'the changes above made collections')
    })
  })

  describe('errors', () => {
    it('refuses a settings change by a member who is not an admin with 403', async () => {
      await assert.rejects(api.updateGroup(groupJid, { by: PIA, restrict: true }), {
        status: 403,
        code: 'forbidden',
      })
    })

    it('refuses a change by someone outside the group with 403', async () => {
      await assert.rejects(
        api.changeParticipants(groupJid, { by: '15550008199', action: 'add', participants: [PIA] }),
        (error: unknown) => error instanceof SandboxControlError && error.status === 404,
      )
      await api.createContact({ phoneNumber: '15550008199' })
      await assert.rejects(
        api.changeParticipants(groupJid, { by: '15550008199', action: 'add', participants: [PIA] }),
        { status: 403, code: 'forbidden' },
      )
    })

    it('reports per person what could not be changed', async () => {
      const result = await api.changeParticipants(groupJid, {
        by: OMAR,
        action: 'add',
        participants: [PIA],
      })
      assert.deepEqual(result.results, [{ phoneNumber: PIA, code: 409 }])
    })

    it('rejects an empty group change and an empty chat change with 400', async () => {
      await assert.rejects(api.updateGroup(groupJid, { by: OMAR }), { status: 400, code: 'invalid_request' })
      await assert.rejects(api.changeChat(ACCOUNT, PIA, {}), { status: 400, code: 'invalid_request' })
      await assert.rejects(api.changeChat(ACCOUNT, 'not a chat', { archived: true }), {
        status: 400,
        code: 'invalid_request',
      })
    })

    it('refuses to ring a number that is not a linked account', async () => {
      await assert.rejects(api.call(PIA, { to: OMAR }), { status: 404, code: 'not_found' })
      await api.createAccount({ phoneNumber: '15550008002' })
      await assert.rejects(api.call(PIA, { to: '15550008002' }), { status: 409, code: 'not_linked' })
    })
  })
})
