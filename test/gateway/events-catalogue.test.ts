import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { EVENT_SCHEMAS, EVENT_TYPES } from '../../src/events/event-schemas.ts'
import type { SimUser } from '../../src/sandbox/network.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertError } from '../support/http-assertions.ts'
import { createLinkedSession, createSession, scanWith, waitForStatus } from '../support/sessions.ts'
import { eventually } from '../support/wait.ts'

const ACCOUNT = '15550900001'
const QUIET = '15550900002'
const S = '/api/v1/sessions/catalogue'
const SANDBOX = '/api/v1/sandbox'

interface Envelope {
  id: string
  type: string
  session: { id: string; name: string; metadata: Record<string, string> } | null
  organization: string
  timestamp: string
  data: Record<string, unknown>
}

interface ChatBody {
  id: string
  archived: boolean
  pinned: boolean
  mutedUntil: string | null
  unreadCount: number
}

interface Person {
  jid: string
  lid: string | null
  phone: string | null
}

/** Each of the six event types that come from outside messages, driven from the sandbox. */
describe('the event catalogue, against the sandbox', () => {
  let gateway: TestGateway
  let sessionId: string
  let quietId: string
  let alice: SimUser
  let bob: SimUser
  let carol: SimUser
  let dan: SimUser
  let socket: WebSocket
  /** every event of the stream, as the WebSocket sent it (not reshaped by a response schema) */
  const streamed: Envelope[] = []

  before(async () => {
    gateway = await startTestGateway()
    const contact = (phoneNumber: string, pushName: string) =>
      gateway.sandbox.network.createUser({ kind: 'contact', phoneNumber, pushName })
    alice = contact('15550900101', 'Alice')
    bob = contact('15550900102', 'Bob')
    carol = contact('15550900103', 'Carol')
    dan = contact('15550900104', 'Dan')
    const base = (await gateway.app.listen()).replace('http', 'ws')
    socket = new WebSocket(`${base}/api/v1/events/stream?types=*`, {
      headers: { 'x-api-key': gateway.adminKey },
    })
    socket.on('message', (data) => streamed.push(JSON.parse(String(data)) as Envelope))
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
    sessionId = (await createLinkedSession(gateway, 'catalogue', ACCOUNT)).id
    await createSession(gateway, { name: 'quiet', config: { ignore: { groups: true } } })
    await scanWith(gateway, 'quiet', QUIET)
    quietId = (await waitForStatus(gateway, 'quiet', 'ready')).id
    // Alice writes first, so the gateway knows her LID ↔ phone pairing.
    const { id } = await gateway.sandbox.sendAs({
      from: alice.phoneNumber,
      to: ACCOUNT,
      content: { text: 'hi' },
    })
    await stored(id)
  })
  after(async () => {
    socket.close()
    await gateway.close()
  })

  const sandbox = async (method: 'POST' | 'PATCH' | 'PUT', path: string, body: unknown) => {
    const response = await gateway.request(method, `${SANDBOX}${path}`, { body })
    assert.ok(response.statusCode < 300, `${method} ${path}: ${response.body}`)
    return response.body ? response.json() : undefined
  }
  const stored = (waId: string) =>
    eventually(async () => (await gateway.request('GET', `${S}/messages/${waId}`)).statusCode === 200, waId)
  /** The session's events of `type` in the store, oldest first, through GET /events. */
  const listed = async (type: string, session = sessionId) => {
    const response = await gateway.request('GET', `/api/v1/events?session=${session}&types=${type}&limit=500`)
    assert.equal(response.statusCode, 200, response.body)
    return ((response.json() as { items: Envelope[] }).items as Envelope[]).reverse()
  }
  /** Waits for an event of `type` matching `match` on the stream, and checks the store has it too. */
  const arrives = async <T = Record<string, unknown>>(
    type: string,
    match: (data: T) => boolean,
    session = sessionId,
  ): Promise<T> => {
    const event = await eventually(
      () => streamed.find((e) => e.type === type && e.session?.id === session && match(e.data as T)),
      `a ${type} event`,
    )
    assertValid(event)
    const inStore = (await listed(type, session)).find((e) => e.id === event.id)
    assert.deepEqual(inStore, event, 'GET /events serves the event the stream sent')
    return event.data as T
  }
  const personOf = (user: SimUser): Person => ({ jid: user.jid, lid: user.lidJid, phone: user.phoneNumber })
  const chatOf = async (jid: string) => {
    const page = await gateway.request('GET', `${S}/chats?limit=100`)
    return (page.json() as { items: ChatBody[] }).items.find((c) => c.id === jid)
  }
  const groupOf = async (jid: string, base = S) => {
    const response = await gateway.request('GET', `${base}/groups/${jid}`)
    return response.statusCode === 200 ? (response.json() as Record<string, unknown>) : undefined
  }
  const members = (group: Record<string, unknown> | undefined) =>
    Object.fromEntries(
      ((group?.participants ?? []) as { phone: string; role: string }[]).map((p) => [p.phone, p.role]),
    )

  describe('happy', () => {
    it('records presence and typing as presence.update, with both addresses, storing nothing', async () => {
      const chatsBefore = (await gateway.request('GET', `${S}/chats`)).body
      await sandbox('POST', '/presence', { from: alice.phoneNumber, to: ACCOUNT, state: 'composing' })
      const typing = await arrives<Record<string, unknown>>(
        'presence.update',
        (d) => d.presence === 'composing',
      )
      assert.deepEqual(typing, {
        chatJid: alice.jid,
        participant: personOf(alice),
        presence: 'composing',
        lastSeen: null,
      })
      await sandbox('POST', '/presence', { from: alice.phoneNumber, to: ACCOUNT, state: 'unavailable' })
      const away = await arrives<{ presence: string; lastSeen: number | null }>(
        'presence.update',
        (d) => d.presence === 'unavailable',
      )
      assert.ok(away.lastSeen && Math.abs(away.lastSeen - Date.now()) < 60_000, 'last seen is epoch ms')
      assert.equal((await gateway.request('GET', `${S}/chats`)).body, chatsBefore, 'presence stores nothing')
    })

    it('stores a chat the phone archived, pinned and muted, with a chat.update for each change', async () => {
      const mutedUntil = Date.now() + 8 * 3_600_000
      await sandbox('PATCH', `/accounts/${ACCOUNT}/chats/${alice.phoneNumber}`, {
        archived: true,
        pinned: true,
        mutedUntil,
      })
      const changed = new Set<string>()
      for (const field of ['archived', 'pinned', 'mutedUntil']) {
        const data = await arrives<{ changed: string[] }>('chat.update', (d) => d.changed.includes(field))
        for (const f of data.changed) changed.add(f)
      }
      assert.deepEqual([...changed].sort(), ['archived', 'mutedUntil', 'pinned'])
      const chat = await eventually(async () => {
        const found = await chatOf(alice.jid)
        return found?.archived && found.pinned && found.mutedUntil !== null ? found : undefined
      }, 'the chat to be archived, pinned and muted')
      assert.equal(chat.mutedUntil, new Date(mutedUntil).toISOString())
      const last = (await listed('chat.update')).at(-1)?.data
      assert.deepEqual(
        { ...last, changed: undefined },
        {
          chatJid: alice.jid,
          chatLid: alice.lidJid,
          changed: undefined,
          name: null,
          archived: true,
          pinned: true,
          mutedUntil,
          unreadCount: chat.unreadCount,
        },
      )
    })

    it('marks a chat read from the phone: unread count 0 and one chat.update, none for messages', async () => {
      const before = (await listed('chat.update')).length
      const { id } = await gateway.sandbox.sendAs({
        from: bob.phoneNumber,
        to: ACCOUNT,
        content: { text: 'one' },
      })
      await stored(id)
      await eventually(async () => (await chatOf(bob.jid))?.unreadCount === 1, 'one unread')
      await sandbox('PATCH', `/accounts/${ACCOUNT}/chats/${bob.phoneNumber}`, { read: true })
      const read = await arrives<{ chatJid: string; changed: string[]; unreadCount: number }>(
        'chat.update',
        (d) => d.chatJid === bob.jid,
      )
      assert.deepEqual([read.changed, read.unreadCount], [['unreadCount'], 0])
      assert.equal((await chatOf(bob.jid))?.unreadCount, 0)
      // the same state again is no change; only the unpin after it is
      await sandbox('PATCH', `/accounts/${ACCOUNT}/chats/${bob.phoneNumber}`, { read: true })
      // the phone may name a chat by LID: it is the chat stored under the phone JID
      await sandbox('PATCH', `/accounts/${ACCOUNT}/chats/${alice.lidJid}`, { pinned: false })
      await arrives(
        'chat.update',
        (d: { changed: string[]; pinned: boolean }) => d.changed.includes('pinned') && !d.pinned,
      )
      const since = (await listed('chat.update')).slice(before)
      assert.deepEqual(
        since.map((e) => [e.data.chatJid, e.data.changed]),
        [
          [bob.jid, ['unreadCount']],
          [alice.jid, ['pinned']],
        ],
        'no chat.update for the message, nor for a change to what is already stored',
      )
    })

    it('records a name saved in the phone’s address book as contact.update and stores it', async () => {
      await sandbox('PUT', `/accounts/${ACCOUNT}/address-book/${bob.phoneNumber}`, {
        fullName: 'Bob Builder',
      })
      const update = await arrives<Record<string, unknown>>('contact.update', (d) => d.name === 'Bob Builder')
      assert.deepEqual(update, {
        jid: bob.jid,
        lid: bob.lidJid,
        phone: bob.phoneNumber,
        changed: ['name'],
        name: 'Bob Builder',
        pushName: 'Bob',
        verifiedName: null,
      })
      const contact = (await gateway.request('GET', `${S}/contacts/${bob.jid}`)).json()
      assert.equal(contact.name, 'Bob Builder')
    })

    it('records a new push name seen on a message as contact.update, once', async () => {
      await sandbox('PATCH', `/contacts/${alice.phoneNumber}`, { pushName: 'Alice B' })
      for (const text of ['new name', 'same name']) {
        await stored(
          (await gateway.sandbox.sendAs({ from: alice.phoneNumber, to: ACCOUNT, content: { text } })).id,
        )
      }
      const update = await arrives<Record<string, unknown>>('contact.update', (d) => d.pushName === 'Alice B')
      assert.deepEqual([update.jid, update.changed], [alice.jid, ['pushName']])
      const changes = (await listed('contact.update')).filter((e) => e.data.jid === alice.jid)
      assert.equal(changes.filter((e) => e.data.pushName === 'Alice B').length, 1, 'the repeat is no change')
      assert.equal((await gateway.request('GET', `${S}/contacts/${alice.jid}`)).json().pushName, 'Alice B')
    })

    it("stores a group's new subject, description and settings, with group.update naming the author", async () => {
      const group = gateway.sandbox.createGroup({
        subject: 'Builders',
        creator: bob.phoneNumber,
        participants: [ACCOUNT, carol.phoneNumber, QUIET],
      })
      await eventually(() => groupOf(group.jid), 'the gateway to learn the group')
      await sandbox('PATCH', `/groups/${group.jid}`, { by: bob.phoneNumber, subject: 'Master builders' })
      const renamed = await arrives<Record<string, unknown>>('group.update', (d) => d.groupJid === group.jid)
      assert.deepEqual(renamed, {
        groupJid: group.jid,
        changed: ['subject'],
        subject: 'Master builders',
        description: null,
        announce: false,
        restrict: false,
        author: personOf(bob),
      })
      await sandbox('PATCH', `/groups/${group.jid}`, {
        by: bob.phoneNumber,
        description: 'We build',
        announce: true,
      })
      await arrives('group.update', (d: { changed: string[] }) => d.changed.includes('announce'))
      const stored = await eventually(async () => {
        const found = await groupOf(group.jid)
        return found?.announce === true && found.description === 'We build' && found
      }, 'the group to be updated')
      assert.equal(stored.subject, 'Master builders')
      const all = (await listed('group.update')).filter((e) => e.data.groupJid === group.jid)
      assert.deepEqual(all.flatMap((e) => e.data.changed).sort(), ['announce', 'description', 'subject'])
    })

    it('stores members added, promoted and removed, with group.participants for each', async () => {
      const group = gateway.sandbox.createGroup({
        subject: 'Crew',
        creator: bob.phoneNumber,
        participants: [ACCOUNT],
      })
      await eventually(() => groupOf(group.jid), 'the gateway to learn the group')
      const change = (action: string, who: SimUser) =>
        sandbox('POST', `/groups/${group.jid}/participants`, {
          by: bob.phoneNumber,
          action,
          participants: [who.phoneNumber],
        })
      await change('add', dan)
      const added = await arrives<Record<string, unknown>>(
        'group.participants',
        (d) => d.groupJid === group.jid && d.action === 'add',
      )
      assert.deepEqual(added, {
        groupJid: group.jid,
        action: 'add',
        participants: [personOf(dan)],
        author: personOf(bob),
      })
      await eventually(async () => members(await groupOf(group.jid))[dan.phoneNumber] === 'member', 'Dan in')
      const about = (action: string) => (d: { groupJid: string; action: string }) =>
        d.groupJid === group.jid && d.action === action
      await change('promote', dan)
      await arrives('group.participants', about('promote'))
      await eventually(
        async () => members(await groupOf(group.jid))[dan.phoneNumber] === 'admin',
        'Dan admin',
      )
      await change('remove', dan)
      await arrives('group.participants', about('remove'))
      await eventually(async () => !(dan.phoneNumber in members(await groupOf(group.jid))), 'Dan out')
    })

    it('stores a group the session was added to, and forgets it when removed', async () => {
      const group = gateway.sandbox.createGroup({
        subject: 'Later',
        creator: carol.phoneNumber,
        participants: [],
      })
      const listedGroups = async () =>
        (
          (await gateway.request('GET', `${S}/groups?limit=100`)).json() as { items: { id: string }[] }
        ).items.map((g) => g.id)
      assert.ok(!(await listedGroups()).includes(group.jid))
      await sandbox('POST', `/groups/${group.jid}/participants`, {
        by: carol.phoneNumber,
        action: 'add',
        participants: [ACCOUNT],
      })
      const added = await arrives<{ groupJid: string; participants: Person[] }>(
        'group.participants',
        (d) => d.groupJid === group.jid,
      )
      assert.deepEqual(
        added.participants.map((p) => p.phone),
        [ACCOUNT],
      )
      assert.ok((await listedGroups()).includes(group.jid), 'stored in the same transaction as the event')
      assert.equal((await groupOf(group.jid))?.subject, 'Later')
      await sandbox('POST', `/groups/${group.jid}/participants`, {
        by: carol.phoneNumber,
        action: 'remove',
        participants: [ACCOUNT],
      })
      await arrives(
        'group.participants',
        (d: { groupJid: string; action: string }) => d.groupJid === group.jid && d.action === 'remove',
      )
      assert.ok(!(await listedGroups()).includes(group.jid), 'a group the session left is forgotten')
    })

    it('records a call once, when it rings, as call.received with status offer', async () => {
      const { callId } = await sandbox('POST', `/contacts/${alice.phoneNumber}/call`, {
        to: ACCOUNT,
        video: true,
        ringMs: 50,
      })
      const call = await arrives<Record<string, unknown>>('call.received', (d) => d.callId === callId)
      assert.deepEqual(
        { ...call, at: typeof call.at },
        {
          callId,
          status: 'offer',
          from: { ...personOf(alice) },
          chatJid: alice.jid,
          isVideo: true,
          isGroup: false,
          groupJid: null,
          offline: false,
          at: 'number',
        },
      )
      // the caller gives up after 50 ms: that timeout is not a second event
      await new Promise((resolve) => setTimeout(resolve, 400))
      const calls = (await listed('call.received')).filter((e) => e.data.callId === callId)
      assert.equal(calls.length, 1)
    })
  })

  describe('session settings', () => {
    it('records no group events or group typing for a session that ignores groups', async () => {
      const group = gateway.sandbox.createGroup({
        subject: 'Noise',
        creator: bob.phoneNumber,
        participants: [QUIET, ACCOUNT],
      })
      await eventually(() => groupOf(group.jid), 'the other session to learn the group')
      await sandbox('PATCH', `/groups/${group.jid}`, { by: bob.phoneNumber, subject: 'Still noise' })
      await sandbox('POST', '/presence', {
        from: bob.phoneNumber,
        to: QUIET,
        state: 'composing',
        group: group.jid,
      })
      await sandbox('POST', `/groups/${group.jid}/participants`, {
        by: bob.phoneNumber,
        action: 'add',
        participants: [dan.phoneNumber],
      })
      // what the other session records shows the changes went out; then a direct one for this
      await arrives('group.participants', (d: { groupJid: string }) => d.groupJid === group.jid)
      await sandbox('POST', '/presence', { from: bob.phoneNumber, to: QUIET, state: 'composing' })
      // this session never heard from Bob directly: it knows him by LID only
      await arrives(
        'presence.update',
        (d: { participant: Person }) => d.participant.lid === bob.lidJid,
        quietId,
      )
      const quiet = streamed.filter((e) => e.session?.id === quietId)
      assert.deepEqual(
        quiet.filter((e) => e.type.startsWith('group.') || e.data.chatJid === group.jid),
        [],
      )
    })
  })

  describe('errors', () => {
    it('refuses event filters that name no type, on the list and on the stream', async () => {
      const error = assertError(
        await gateway.request('GET', '/api/v1/events?types=group.updated,message.*'),
        400,
        'invalid_request',
      )
      assert.match(error.message, /group\.updated/)
      assert.doesNotMatch(error.message, /message\.\*/)
      assertError(await gateway.request('GET', '/api/v1/events/stream?types=calls.*'), 400, 'invalid_request')
      const families = await gateway.request('GET', '/api/v1/events?types=group.*,call.received,*')
      assert.equal(families.statusCode, 200, families.body)
    })
  })

  describe('security', () => {
    it('lists the event types to any key with viewer rights, and to no one without a key', async () => {
      const viewer = (
        await gateway.request('POST', '/api/v1/api-keys', { body: { name: 'watcher', role: 'viewer' } })
      ).json().key
      assert.equal((await gateway.request('GET', '/api/v1/events/types', { key: viewer })).statusCode, 200)
      assertError(await gateway.request('GET', '/api/v1/events/types', { key: null }), 401, 'unauthorized')
    })
  })

  describe('the catalogue', () => {
    it('lists every type with a description and its schema', async () => {
      const response = await gateway.request('GET', '/api/v1/events/types')
      assert.equal(response.statusCode, 200, response.body)
      const items = (response.json() as { items: { type: string; description: string; schema: string }[] })
        .items
      assert.deepEqual(
        items.map((i) => i.type),
        EVENT_TYPES,
      )
      for (const item of items) {
        assert.ok(item.description.length > 10, `${item.type} says what it means`)
        assert.equal(item.schema, `#/components/schemas/Event.${item.type}`)
      }
      for (const type of ['presence.update', 'chat.update', 'contact.update', 'group.update']) {
        assert.ok(EVENT_TYPES.includes(type as (typeof EVENT_TYPES)[number]), type)
      }
      for (const type of ['group.participants', 'call.received']) {
        assert.ok(EVENT_TYPES.includes(type as (typeof EVENT_TYPES)[number]), type)
      }
    })

    it('publishes a schema for every type in the OpenAPI document, and the envelope as their oneOf', async () => {
      const doc = (await gateway.request('GET', '/api/openapi.json')).json() as {
        components: { schemas: Record<string, Record<string, unknown>> }
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
        webhooks: Record<string, Record<string, { requestBody: unknown }>>
      }
      const schemas = doc.components.schemas
      for (const type of EVENT_TYPES) {
        const schema = schemas[`Event.${type}`] as { properties?: Record<string, { const?: string }> }
        assert.ok(schema, `Event.${type} is published`)
        assert.equal(schema.properties?.type?.const, type)
        assert.ok(schema.properties?.data, `Event.${type} has its data schema`)
      }
      const envelope = schemas.Event as { oneOf: { $ref: string }[]; discriminator: { propertyName: string } }
      assert.deepEqual(
        envelope.oneOf.map((r) => r.$ref).sort(),
        EVENT_TYPES.map((t) => `#/components/schemas/Event.${t}`).sort(),
      )
      assert.equal(envelope.discriminator.propertyName, 'type')
      const list = JSON.stringify(doc.paths['/api/v1/events']?.get?.responses['200'])
      assert.match(list, /#\/components\/schemas\/Event"/)
      // Receivers see the same envelope: the document says what a webhook POST carries.
      assert.match(JSON.stringify(doc.webhooks.event?.post?.requestBody), /#\/components\/schemas\/Event"/)
    })

    it('emitted only events whose payload matches its schema exactly', () => {
      const mine = streamed.filter((e) => e.session?.id === sessionId || e.session?.id === quietId)
      const types = new Set(mine.map((e) => e.type))
      for (const type of ['presence.update', 'chat.update', 'contact.update', 'group.update']) {
        assert.ok(types.has(type), `saw ${type}`)
      }
      for (const type of ['group.participants', 'call.received', 'message.received', 'session.status']) {
        assert.ok(types.has(type), `saw ${type}`)
      }
      for (const event of mine) assertValid(event)
    })
  })
})

/** The payload parses, and parsing drops nothing: no field beyond its schema. */
function assertValid(event: Envelope): void {
  assert.match(event.id, /^evt_/)
  assert.ok(!Number.isNaN(Date.parse(event.timestamp)))
  assert.ok((EVENT_TYPES as string[]).includes(event.type), `${event.type} is in the catalogue`)
  const schema = EVENT_SCHEMAS[event.type as (typeof EVENT_TYPES)[number]]
  const parsed = schema.safeParse(event.data)
  assert.ok(parsed.success, `${event.type}: ${JSON.stringify(parsed.error?.issues)}`)
  assert.deepEqual(parsed.data, event.data, `${event.type} carries nothing beyond its schema`)
}
