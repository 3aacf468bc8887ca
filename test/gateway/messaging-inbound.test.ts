import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { ContactContent } from '../../src/sandbox/contact-messages.ts'
import type { SimGroup, SimUser } from '../../src/sandbox/network.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { createLinkedSession, createSession, scanWith, waitForStatus } from '../support/sessions.ts'
import { eventually } from '../support/wait.ts'

const ACCOUNT = '15550600001'
const ALICE = '15550600101'
const S = '/api/v1/sessions/inbox'

interface MessageBody {
  id: string
  waId: string
  chatId: string
  chatLid: string | null
  fromMe: boolean
  type: string
  text: string | null
  status: string | null
  timestamp: string
  sender: { jid: string | null; lid: string | null; pushName: string | null }
  media: {
    type: string
    mimetype: string
    mediaId?: string
    size?: number
    fileName?: string
    ptt?: boolean
  } | null
  details: Record<string, unknown> | null
  targetId: string | null
  quotedId: string | null
  mentions: string[]
}

interface Page<T> {
  items: T[]
  nextCursor: string | null
}

describe('receiving through the API, against the sandbox', () => {
  let gateway: TestGateway
  let alice: SimUser
  let bob: SimUser

  before(async () => {
    gateway = await startTestGateway()
    alice = gateway.sandbox.network.createUser({
      kind: 'contact',
      phoneNumber: ALICE,
      pushName: 'Alice',
    })
    bob = gateway.sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550600102', pushName: 'Bob' })
    await createLinkedSession(gateway, 'inbox', ACCOUNT)
    const patched = await gateway.request('PATCH', S, { body: { config: { pacing: { enabled: false } } } })
    assert.equal(patched.statusCode, 200, patched.body)
  })
  after(async () => {
    await gateway.close()
  })

  const fromAlice = (content: ContactContent, replyTo?: string) =>
    gateway.sandbox.sendAs({ from: alice.phoneNumber, to: ACCOUNT, content, ...(replyTo ? { replyTo } : {}) })
  /** A message as GET …/messages/{waId} shows it, once it is stored (and `ready` says it is complete). */
  const stored = (waId: string, ready: (m: MessageBody) => boolean = () => true, base = S) =>
    eventually(async () => {
      const response = await gateway.request('GET', `${base}/messages/${waId}`)
      if (response.statusCode !== 200) return undefined
      const message = response.json() as MessageBody
      return ready(message) && message
    }, `message ${waId} to be stored`)
  const timeline = async (chatId: string, base = S, query = '') => {
    const response = await gateway.request('GET', `${base}/chats/${chatId}/messages${query}`)
    assert.equal(response.statusCode, 200, response.body)
    return response.json() as Page<MessageBody>
  }

  describe('happy', () => {
    it('stores a text in its chat, the same through the timeline and by id', async () => {
      const { id } = await fromAlice({ text: 'hello inbox' })
      const message = await stored(id)
      assert.equal(message.type, 'text')
      assert.equal(message.text, 'hello inbox')
      assert.equal(message.chatId, alice.jid)
      assert.equal(message.chatLid, alice.lidJid)
      assert.equal(message.fromMe, false)
      assert.equal(message.status, null)
      assert.match(message.id, /^msg_/)
      assert.deepEqual(message.sender, { jid: alice.jid, lid: alice.lidJid, pushName: 'Alice' })
      assert.ok(!Number.isNaN(Date.parse(message.timestamp)))
      // the chat can be named by phone number, phone JID, @c.us JID or LID
      for (const chatId of [alice.phoneNumber, alice.jid, `${alice.phoneNumber}@c.us`, alice.lidJid]) {
        const page = await timeline(chatId)
        assert.deepEqual(
          page.items.find((m) => m.waId === id),
          message,
          `the timeline of ${chatId} holds it`,
        )
      }
    })

    it('stores a reply with the id of the message it quotes', async () => {
      const original = await fromAlice({ text: 'first' })
      const reply = await fromAlice({ text: 'and a reply' }, original.id)
      const message = await stored(reply.id)
      assert.equal(message.type, 'text')
      assert.equal(message.text, 'and a reply')
      assert.equal(message.quotedId, original.id)
    })

    const mediaCases = [
      { kind: 'image', mimetype: 'image/jpeg', caption: 'a picture' },
      { kind: 'video', mimetype: 'video/mp4', caption: 'a clip', seconds: 3 },
      { kind: 'audio', mimetype: 'audio/ogg; codecs=opus', ptt: true, seconds: 2 },
      { kind: 'document', mimetype: 'application/pdf', caption: 'the report', fileName: 'report.pdf' },
      { kind: 'sticker', mimetype: 'image/webp' },
    ] as const
    for (const media of mediaCases) {
      it(`downloads a received ${media.kind} and serves it byte for byte`, async () => {
        const bytes = Buffer.from(`${media.kind} bytes from Alice \u0000\u00ff ${Math.random()}`)
        const { id } = await fromAlice({ media: { ...media, data: bytes.toString('base64') } })
        const message = await stored(id, (m) => Boolean(m.media?.mediaId))
        assert.equal(message.type, media.kind)
        assert.equal(message.text, 'caption' in media ? media.caption : null)
        assert.equal(message.media?.type, media.kind)
        assert.equal(message.media?.mimetype, media.mimetype)
        assert.equal(message.media?.size, bytes.length)
        if ('fileName' in media) assert.equal(message.media?.fileName, media.fileName)
        if (media.kind === 'audio') assert.equal(message.media?.ptt, true)
        assert.match(message.media?.mediaId ?? '', /^med_/)
        const file = await gateway.request('GET', `${S}/media/${message.media?.mediaId}`)
        assert.equal(file.statusCode, 200)
        assert.equal(file.headers['content-type'], media.mimetype)
        assert.equal(file.headers['x-content-type-options'], 'nosniff')
        assert.deepEqual(file.rawPayload, bytes)
      })
    }

    it('stores a location with its coordinates, name and address', async () => {
      const { id } = await fromAlice({
        location: { latitude: -6.2, longitude: 106.8, name: 'Monas', address: 'Jakarta' },
      })
      const message = await stored(id)
      assert.equal(message.type, 'location')
      assert.deepEqual(message.details, {
        latitude: -6.2,
        longitude: 106.8,
        name: 'Monas',
        address: 'Jakarta',
      })
    })

    it('stores a contact card with its vCard', async () => {
      const vcard = 'BEGIN:VCARD\nVERSION:3.0\nFN:Carol\nTEL;waid=15550600199:+1 555 060 0199\nEND:VCARD'
      const { id } = await fromAlice({ contact: { displayName: 'Carol', vcard } })
      const message = await stored(id)
      assert.equal(message.type, 'contact')
      assert.deepEqual(message.details, { contacts: [{ displayName: 'Carol', vcard }] })
    })

    it('stores a reaction pointing at its message, with the emoji', async () => {
      const target = await fromAlice({ text: 'react to me' })
      const { id } = await fromAlice({ reaction: { messageId: target.id, emoji: '❤️' } })
      const message = await stored(id)
      assert.equal(message.type, 'reaction')
      assert.equal(message.targetId, target.id)
      assert.deepEqual(message.details, { emoji: '❤️' })
    })

    it('stores a poll and a vote on it, the vote decrypted to the chosen option', async () => {
      const poll = await fromAlice({ poll: { name: 'Tea or coffee?', options: ['tea', 'coffee'] } })
      const created = await stored(poll.id)
      assert.equal(created.type, 'poll')
      assert.equal(created.text, 'Tea or coffee?')
      assert.deepEqual(created.details, {
        name: 'Tea or coffee?',
        options: ['tea', 'coffee'],
        selectableCount: 1,
      })
      const vote = await fromAlice({ pollVote: { pollId: poll.id, options: ['coffee'] } })
      const voted = await stored(vote.id)
      assert.equal(voted.type, 'poll_vote')
      assert.equal(voted.targetId, poll.id)
      assert.deepEqual(voted.details, { options: ['coffee'] })
    })

    it('stores an edit and a delete pointing at the message they change', async () => {
      const target = await fromAlice({ text: 'tpyo' })
      const edit = await fromAlice({ edit: { messageId: target.id, text: 'typo' } })
      const edited = await stored(edit.id)
      assert.equal(edited.type, 'edit')
      assert.equal(edited.targetId, target.id)
      assert.equal(edited.text, 'typo')
      const removal = await fromAlice({ delete: { messageId: target.id } })
      const deleted = await stored(removal.id)
      assert.equal(deleted.type, 'delete')
      assert.equal(deleted.targetId, target.id)
    })

    it('stores a group message in the group chat, with the member as sender (phone JID and LID)', async () => {
      const group = gateway.sandbox.createGroup({
        subject: 'Inbound crew',
        creator: alice.phoneNumber,
        participants: [ACCOUNT, bob.phoneNumber],
      })
      const { id } = await gateway.sandbox.sendAs({
        from: bob.phoneNumber,
        to: group.jid,
        content: { text: 'hi all' },
      })
      const message = await stored(id)
      assert.equal(message.chatId, group.jid)
      assert.equal(message.chatLid, null)
      assert.equal(message.text, 'hi all')
      assert.deepEqual(message.sender, { jid: bob.jid, lid: bob.lidJid, pushName: 'Bob' })
      const page = await timeline(group.jid)
      assert.ok(page.items.some((m) => m.waId === id))
      const reaction = await gateway.sandbox.sendAs({
        from: alice.phoneNumber,
        to: group.jid,
        content: { reaction: { messageId: id, emoji: '👋' } },
      })
      const reacted = await stored(reaction.id)
      assert.equal(reacted.chatId, group.jid)
      assert.equal(reacted.targetId, id)
      assert.deepEqual(reacted.sender, { jid: alice.jid, lid: alice.lidJid, pushName: 'Alice' })
    })

    it('decrypts a vote on a poll sent through the API with the poll body it stored (what getMessage serves)', async () => {
      const accepted = (
        await gateway.request('POST', `${S}/messages`, {
          body: { to: alice.jid, type: 'poll', poll: { name: 'Lunch?', options: ['yes', 'no'] } },
        })
      ).json() as { id: string; waId: string }
      await eventually(() => alice.received.find((m) => m.id === accepted.waId), 'Alice to get the poll')
      await stored(accepted.waId, (m) => m.status !== 'pending')
      const vote = await fromAlice({ pollVote: { pollId: accepted.waId, options: ['yes'] } })
      const voted = await stored(vote.id)
      assert.equal(voted.type, 'poll_vote')
      assert.equal(voted.targetId, accepted.waId)
      assert.deepEqual(voted.sender, { jid: alice.jid, lid: alice.lidJid, pushName: 'Alice' })
      assert.deepEqual(voted.details, { options: ['yes'] })
    })

    it('stores messages sent while the connection was dropped once each, in order', async () => {
      const before = (await timeline(bob.jid)).items.length
      gateway.sandbox.injectFault({ kind: 'drop', phoneNumber: ACCOUNT })
      const ids: string[] = []
      for (const text of ['offline 1', 'offline 2', 'offline 3']) {
        ids.push((await gateway.sandbox.sendAs({ from: bob.phoneNumber, to: ACCOUNT, content: { text } })).id)
      }
      await waitForStatus(gateway, 'inbox', 'ready', { also: (s) => s.reconnectCount >= 1 })
      for (const id of ids) await stored(id)
      const page = await timeline(bob.jid)
      assert.equal(page.items.length, before + 3)
      assert.deepEqual(
        page.items
          .filter((m) => ids.includes(m.waId))
          .map((m) => m.text)
          .reverse(),
        ['offline 1', 'offline 2', 'offline 3'],
      )
    })

    it('stores messages sent while the session was stopped once each, in order, after it starts', async () => {
      assert.equal((await gateway.request('POST', `${S}/stop`)).statusCode, 200)
      await waitForStatus(gateway, 'inbox', 'stopped')
      // stopped means the socket is closed at WhatsApp too: from here on, messages wait there
      const account = gateway.sandbox.network.getUser(ACCOUNT)
      await eventually(() => gateway.sandbox.connectionsOf(account).length === 0, 'the socket to close')
      const ids: string[] = []
      for (const text of ['while away 1', 'while away 2', 'while away 3']) {
        ids.push((await fromAlice({ text })).id)
      }
      const [deviceId = 0] = account.devices.keys()
      assert.equal(gateway.sandbox.router.pendingCount(account, deviceId), 3, 'WhatsApp holds them meanwhile')
      const started = await gateway.request('POST', `${S}/start`)
      assert.equal(started.statusCode, 200, started.body)
      await waitForStatus(gateway, 'inbox', 'ready')
      for (const id of ids) await stored(id)
      const page = await timeline(alice.jid, S, '?limit=100')
      const mine = page.items.filter((m) => ids.includes(m.waId))
      assert.deepEqual(mine.map((m) => m.text).reverse(), ['while away 1', 'while away 2', 'while away 3'])
    })

    it('delivers a message to a contact whose phone was offline once it comes back', async () => {
      await gateway.sandbox.router.setOnline(alice, false)
      try {
        const accepted = (
          await gateway.request('POST', `${S}/messages`, {
            body: { to: alice.jid, type: 'text', text: { body: 'are you there?' } },
          })
        ).json() as { id: string; waId: string }
        await stored(accepted.waId, (m) => m.status === 'sent')
        await new Promise((resolve) => setTimeout(resolve, 300))
        assert.equal((await stored(accepted.waId)).status, 'sent', 'not delivered while the phone is off')
        assert.equal(
          alice.received.some((m) => m.id === accepted.waId),
          false,
        )
        await gateway.sandbox.router.setOnline(alice, true)
        await stored(accepted.waId, (m) => m.status === 'delivered')
        assert.ok(alice.received.some((m) => m.id === accepted.waId))
      } finally {
        await gateway.sandbox.router.setOnline(alice, true)
      }
    })
  })

  describe('session settings', () => {
    it('ignores group messages at the source for a session with ignore.groups', async () => {
      const account = '15550600002'
      await createSession(gateway, { name: 'no-groups', config: { ignore: { groups: true } } })
      await scanWith(gateway, 'no-groups', account)
      await waitForStatus(gateway, 'no-groups', 'ready')
      const group: SimGroup = gateway.sandbox.createGroup({
        subject: 'Noise',
        creator: bob.phoneNumber,
        participants: [account],
      })
      const noise = await gateway.sandbox.sendAs({
        from: bob.phoneNumber,
        to: group.jid,
        content: { text: 'spam' },
      })
      const direct = await gateway.sandbox.sendAs({
        from: bob.phoneNumber,
        to: account,
        content: { text: 'direct' },
      })
      const base = '/api/v1/sessions/no-groups'
      await stored(direct.id, () => true, base)
      // Baileys acknowledges the group message once it has handled it
      await eventually(
        () =>
          gateway.sandbox.router.activity
            .get(bob.phoneNumber)
            ?.some((a) => a.kind === 'receipt' && a.messageIds?.includes(noise.id)),
        'the group message to be received',
      )
      assert.equal((await gateway.request('GET', `${base}/messages/${noise.id}`)).statusCode, 404)
      assert.deepEqual((await timeline(group.jid, base)).items, [])
      const groups = (await gateway.request('GET', `${base}/groups`)).json() as Page<unknown>
      assert.deepEqual(groups.items, [])
      const chats = (await gateway.request('GET', `${base}/chats`)).json() as Page<{ id: string }>
      assert.deepEqual(
        chats.items.map((c) => c.id),
        [bob.jid],
      )
    })

    it('stores no received message with store.enabled false, and still sends', async () => {
      const account = '15550600003'
      await createSession(gateway, {
        name: 'no-store',
        config: { store: { enabled: false }, pacing: { enabled: false } },
      })
      await scanWith(gateway, 'no-store', account)
      const session = await waitForStatus(gateway, 'no-store', 'ready')
      const base = '/api/v1/sessions/no-store'
      const { id } = await gateway.sandbox.sendAs({
        from: alice.phoneNumber,
        to: account,
        content: { text: 'forget me' },
      })
      // the event still goes out; only the store stays empty
      await eventually(async () => {
        const events = (
          await gateway.request('GET', `/api/v1/events?session=${session.id}&types=message.received`)
        ).json() as { items: { data: { waId: string } }[] }
        return events.items.some((e) => e.data.waId === id)
      }, 'the message.received event')
      assert.equal((await gateway.request('GET', `${base}/messages/${id}`)).statusCode, 404)
      assert.deepEqual((await timeline(alice.jid, base)).items, [])
      const sent = await gateway.request('POST', `${base}/messages`, {
        body: { to: alice.jid, type: 'text', text: { body: 'but I can talk' } },
      })
      assert.equal(sent.statusCode, 202, sent.body)
      const { waId } = sent.json() as { waId: string }
      await eventually(() => alice.received.find((m) => m.id === waId), 'Alice to get it')
      await stored(waId, (m) => m.status === 'delivered', base)
    })
  })

  describe('errors', () => {
    // Cursors are checked where they are decoded, which names the parameter without its
    // `querystring.` prefix today: either spelling names the field.
    const cases: [string, string, string][] = [
      ['a malformed chat id', `${S}/chats/not-a-chat/messages`, 'params.chatId'],
      ['a chat id on an unknown server', `${S}/chats/123456789@example.com/messages`, 'params.chatId'],
      ['a timeline limit above 100', `${S}/chats/${ALICE}/messages?limit=101`, 'querystring.limit'],
      ['a timeline limit of 0', `${S}/chats/${ALICE}/messages?limit=0`, 'querystring.limit'],
      ['a chat list limit above 100', `${S}/chats?limit=101`, 'querystring.limit'],
      ['a timeline cursor that is not one', `${S}/chats/${ALICE}/messages?before=garbage`, 'before'],
      ['both timeline directions at once', `${S}/chats/${ALICE}/messages?before=a&after=b`, 'after'],
      ['a chat list cursor that is not one', `${S}/chats?cursor=garbage`, 'cursor'],
      ['a contact list cursor that is not one', `${S}/contacts?cursor=garbage`, 'cursor'],
      ['a group list cursor that is not one', `${S}/groups?cursor=garbage`, 'cursor'],
      ['a media id that is not one', `${S}/media/med_..%2F..%2Fetc%2Fpasswd`, 'params.mediaId'],
    ]
    for (const [what, url, path] of cases) {
      it(`refuses ${what} with 400 naming ${path}`, async () => {
        const response = await gateway.request('GET', url)
        assert.equal(response.statusCode, 400, response.body)
        const error = response.json().error
        assert.ok(
          error.details?.some((d: { path: string }) => d.path === path || d.path === `querystring.${path}`),
          JSON.stringify(error),
        )
      })
    }

    it('answers 404 for a message or media the session does not have', async () => {
      assert.equal((await gateway.request('GET', `${S}/messages/msg_unknown`)).statusCode, 404)
      assert.equal((await gateway.request('GET', `${S}/media/med_unknown`)).statusCode, 404)
    })
  })

  describe('security', () => {
    it('serves media only with a key', async () => {
      assert.equal((await gateway.request('GET', `${S}/media/med_unknown`, { key: null })).statusCode, 401)
      assert.equal(
        (await gateway.request('GET', `${S}/chats/${alice.jid}/messages`, { key: null })).statusCode,
        401,
      )
    })
  })
  it('stores a burst together: each message once, the chat folded, the sender’s latest name', async () => {
    const carol = gateway.sandbox.network.createUser({
      kind: 'contact',
      phoneNumber: '15550600103',
      pushName: 'Cara',
    })
    // Sent at once, the three arrive in one turn of the gateway's event loop and are stored as one group.
    // Carol renames herself between the sends (the name goes out with each message).
    const sent = await Promise.all(
      ['Cara', 'Carol B', 'Carol'].map((pushName, i) => {
        carol.pushName = pushName
        return gateway.sandbox.sendAs({
          from: carol.phoneNumber,
          to: ACCOUNT,
          content: { text: `burst ${i}` },
        })
      }),
    )
    for (const { id } of sent) await stored(id)
    const page = await timeline(carol.phoneNumber)
    assert.deepEqual(page.items.map((m) => m.text).sort(), ['burst 0', 'burst 1', 'burst 2'])
    const chats = (await gateway.request('GET', `${S}/chats?q=${carol.phoneNumber}`)).json() as Page<{
      id: string
      unreadCount: number
      lastMessageId: string
    }>
    const chat = chats.items.find((item) => item.id.startsWith(carol.phoneNumber))
    assert.equal(chat?.unreadCount, 3)
    const newest = page.items.reduce((a, b) => (a.timestamp >= b.timestamp ? a : b))
    assert.equal(chat?.lastMessageId, newest.id)
    const contact = (await gateway.request('GET', `${S}/contacts/${carol.phoneNumber}`)).json() as {
      pushName: string | null
    }
    assert.equal(contact.pushName, 'Carol', 'the name of the last message, not an earlier one')
  })
})

describe('history sync on first link, through the API', () => {
  let gateway: TestGateway
  let people: SimUser[]

  before(async () => {
    gateway = await startTestGateway()
    people = ['15550610101', '15550610102', '15550610103'].map((phoneNumber, i) =>
      gateway.sandbox.network.createUser({ kind: 'contact', phoneNumber, pushName: `Past ${i + 1}` }),
    )
    gateway.sandbox.history.chats = 2
    gateway.sandbox.history.messagesPerChat = 4
  })
  after(async () => {
    await gateway.close()
  })

  it('stores the chats and messages of the first-link history, announced by one event', async () => {
    const session = await createLinkedSession(gateway, 'veteran', '15550610001')
    const base = '/api/v1/sessions/veteran'
    const [first, second] = people as [SimUser, SimUser]
    const chats = await eventually(async () => {
      const page = (await gateway.request('GET', `${base}/chats`)).json() as Page<{
        id: string
        name: string
      }>
      return page.items.length >= 2 && page
    }, 'the history chats')
    assert.deepEqual(
      chats.items.map((c) => [c.id, c.name]).sort(),
      [
        [first.jid, first.pushName],
        [second.jid, second.pushName],
      ].sort(),
    )
    for (const [index, person] of [first, second].entries()) {
      const page = (
        await gateway.request('GET', `${base}/chats/${person.jid}/messages`)
      ).json() as Page<MessageBody>
      assert.deepEqual(
        page.items.map((m) => m.text).reverse(),
        [1, 2, 3, 4].map((i) => `history ${index + 1}.${i}`),
      )
      assert.deepEqual(page.items.map((m) => m.fromMe).reverse(), [false, true, false, true])
      const theirs = page.items.find((m) => !m.fromMe)
      assert.equal(theirs?.sender.jid, person.jid)
      assert.equal(theirs?.sender.pushName, person.pushName)
    }
    const events = (
      await gateway.request('GET', `/api/v1/events?session=${session.id}&limit=500`)
    ).json() as { items: { type: string; data: Record<string, unknown> }[] }
    const syncs = events.items.filter((e) => e.type === 'history.sync')
    assert.equal(syncs.length, 1, JSON.stringify(syncs))
    assert.equal(syncs[0]?.data.messages, 8)
    assert.equal(syncs[0]?.data.chats, 2)
    assert.deepEqual(
      events.items.filter((e) => e.type.startsWith('message.')),
      [],
      'no per-message events for history',
    )
  })
})
