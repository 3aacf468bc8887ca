import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AppError } from '../../src/domain/errors.ts'
import { newId } from '../../src/domain/ids.ts'
import type { ChatActivity, GroupRecord, MediaFileRecord, TimelinePage } from '../../src/store/index.ts'
import { createOrganization, createSession, messageRecord, type StoreContext, tick } from './fixtures.ts'

const ANN = '15550001111@s.whatsapp.net'
const ANN_LID = '90001111@lid'
const BOB = '15550002222@s.whatsapp.net'
const rejectsWith = (promise: Promise<unknown>, code: string) =>
  assert.rejects(promise, (error) => error instanceof AppError && error.code === code)
const idsOf = (items: { id: string }[]) => items.map((item) => item.id)
const jidsOf = (items: { jid: string }[]) => items.map((item) => item.jid)
const activity = (jid: string, messageId: string, at: number, extra: Partial<ChatActivity> = {}) => ({
  jid,
  messageId,
  at,
  addUnread: 0,
  ...extra,
})

const mediaFile = (sessionId: string, messageId: string): MediaFileRecord => {
  const id = newId('media')
  const file = { path: `/data/media/${id}`, mimetype: 'image/jpeg', size: 2048, sha256: 'ab'.repeat(32) }
  return { id, sessionId, messageId, ...file, createdAt: tick() }
}

/** Ann's text, as `messageRecord` makes it (her chat, her number). */
const message = messageRecord

const group = (sessionId: string, overrides: Partial<GroupRecord> = {}): GroupRecord => ({
  sessionId,
  jid: `1203630${tick()}@g.us`,
  subject: 'book club',
  description: null,
  owner: ANN,
  createdAt: tick(),
  participants: [{ jid: ANN, lid: ANN_LID, phone: '15550001111', role: 'superadmin', name: null }],
  announce: false,
  restrict: true,
  updatedAt: tick(),
  ...overrides,
})

export function messagingSuite(context: StoreContext): void {
  const newSession = async () => (await createSession(context, await createOrganization(context))).id

  describe('messages', () => {
    it('should read back a queued message with its JSON fields and booleans intact', async () => {
      const sessionId = await newSession()
      const record = message(sessionId, {
        fromMe: true,
        type: 'image',
        media: { type: 'image', mimetype: 'image/jpeg', size: 1024 },
        mentions: [BOB],
        details: { nested: { list: [1, 'two'] } },
        status: 'pending',
        sendRequest: { jid: ANN, caption: 'hi' },
        sendAfter: tick(),
      })
      assert.equal(await context.repositories.messages.insertIfNew(record), true)
      assert.deepEqual(await context.repositories.messages.getById(sessionId, record.id), record)
      assert.equal(await context.repositories.messages.getById(await newSession(), record.id), undefined)
    })

    it('should store a WhatsApp id once per chat, and again in another chat', async () => {
      const sessionId = await newSession()
      const { messages } = context.repositories
      const first = message(sessionId)
      assert.equal(await messages.insertIfNew(first), true)
      assert.equal(await messages.insertIfNew(message(sessionId, { waId: first.waId })), false)
      assert.equal(await messages.insertIfNew(message(sessionId, { waId: first.waId, chatJid: BOB })), true)
      assert.equal(await messages.countBySession(sessionId), 2)
    })

    it('should count only new messages in a bulk insert that spans chunks and repeats itself', async () => {
      const sessionId = await newSession()
      const { messages } = context.repositories
      const existing = message(sessionId)
      await messages.insertIfNew(existing)
      const batch = Array.from({ length: 450 }, () => message(sessionId))
      const repeats = [
        message(sessionId, { waId: existing.waId }),
        message(sessionId, { waId: batch[7]!.waId }),
      ]
      assert.equal(await messages.insertMany([...batch.slice(0, 300), ...repeats, ...batch.slice(300)]), 450)
      assert.equal(await messages.insertMany(batch), 0)
      assert.equal(await messages.countBySession(sessionId), 451)
    })

    it('should find a message by WhatsApp id, the most recent one when no chat is given', async () => {
      const sessionId = await newSession()
      const { messages } = context.repositories
      const older = message(sessionId, { chatJid: BOB })
      const newer = message(sessionId, { waId: older.waId })
      await messages.insertMany([newer, older])
      assert.equal((await messages.getByWaId(sessionId, older.waId))?.id, newer.id)
      assert.equal((await messages.getByWaId(sessionId, older.waId, BOB))?.id, older.id)
      assert.equal(await messages.getByWaId(sessionId, 'unknown'), undefined)
    })

    it('should move a status only forward, and to failed only before delivery', async () => {
      const sessionId = await newSession()
      const { messages } = context.repositories
      const sent = message(sessionId, { fromMe: true, status: 'pending' })
      const queued = message(sessionId, { fromMe: true, status: 'pending' })
      const inbound = message(sessionId)
      await messages.insertMany([sent, queued, inbound])
      const status = async (waId: string, to: Parameters<typeof messages.updateStatusByWaId>[2]) =>
        (await messages.updateStatusByWaId(sessionId, waId, to, tick()))?.status
      assert.equal(await status(sent.waId, 'read'), 'read')
      assert.equal(await status(sent.waId, 'delivered'), undefined)
      assert.equal(await status(sent.waId, 'failed'), undefined)
      assert.equal((await messages.getById(sessionId, sent.id))?.status, 'read')
      assert.equal(await status(sent.waId, 'played'), 'played')
      assert.equal(await status(queued.waId, 'delivered'), 'delivered')
      assert.equal(await status(queued.waId, 'failed'), undefined)
      const failing = message(sessionId, { fromMe: true, status: 'sent' })
      await messages.insertIfNew(failing)
      assert.equal(await status(failing.waId, 'failed'), 'failed')
      assert.equal(await status(failing.waId, 'delivered'), undefined)
      assert.equal(await status(inbound.waId, 'read'), undefined)
      assert.equal(await status('unknown', 'read'), undefined)
    })

    it('should page a timeline both ways without skipping or repeating messages of one timestamp', async () => {
      const sessionId = await newSession()
      const { messages } = context.repositories
      const at = tick()
      const stored = [at, at, at, at + 1, at - 1].map((timestamp) => message(sessionId, { timestamp }))
      await messages.insertMany([...stored, message(sessionId, { chatJid: BOB })])
      const newestFirst = stored.toSorted((a, b) => b.timestamp - a.timestamp || (a.id < b.id ? 1 : -1))
      const expected = idsOf(newestFirst)
      const ids = (page: TimelinePage) => idsOf(page.items)

      const pages = [await messages.listByChat(sessionId, ANN, { limit: 2 })]
      while (pages.at(-1)?.nextCursor) {
        pages.push(await messages.listByChat(sessionId, ANN, { limit: 2, before: pages.at(-1)!.nextCursor! }))
      }
      assert.deepEqual(pages.map(ids), [expected.slice(0, 2), expected.slice(2, 4), expected.slice(4)])
      assert.equal(pages[0]!.previousCursor, null)
      assert.notEqual(pages[2]!.previousCursor, null)

      const back = [await messages.listByChat(sessionId, ANN, { limit: 2, after: pages[2]!.previousCursor! })]
      while (back.at(-1)?.previousCursor) {
        back.push(
          await messages.listByChat(sessionId, ANN, { limit: 2, after: back.at(-1)!.previousCursor! }),
        )
      }
      assert.deepEqual(back.map(ids), [expected.slice(2, 4), expected.slice(0, 2)])
      assert.notEqual(back[0]!.nextCursor, null)
      const older = await messages.listByChat(sessionId, ANN, { limit: 10, before: back[0]!.nextCursor! })
      assert.deepEqual(ids(older), [newestFirst[4]!.id])

      await rejectsWith(messages.listByChat(sessionId, ANN, { limit: 2, before: 'bogus' }), 'invalid_request')
      const both = { limit: 2, before: older.previousCursor!, after: older.previousCursor! }
      await rejectsWith(messages.listByChat(sessionId, ANN, both), 'invalid_request')
    })

    it('should hand out due queued messages in send order and count what waits', async () => {
      const sessionId = await newSession()
      const { messages } = context.repositories
      const now = tick()
      const queued = (sendAfter: number) => message(sessionId, { fromMe: true, status: 'pending', sendAfter })
      const [later, first, second] = [queued(now + 1000), queued(now - 20), queued(now - 10)]
      await messages.insertMany([later, second, first, message(sessionId, { fromMe: true, status: 'sent' })])
      assert.deepEqual(idsOf(await messages.claimDue(sessionId, now, 10)), [first.id, second.id])
      assert.deepEqual(idsOf(await messages.claimDue(sessionId, now, 1)), [first.id])
      assert.equal(await messages.countPending(sessionId), 3)
      assert.equal(await messages.nextSendAfter(sessionId), now - 20)

      const updated = await messages.update(first.id, {
        status: 'sent',
        sendRequest: null,
        sendAfter: null,
        raw: 'cHJvdG8=',
      })
      assert.deepEqual(
        [updated.status, updated.sendRequest, updated.sendAfter, updated.raw],
        ['sent', null, null, 'cHJvdG8='],
      )
      assert.equal(await messages.countPending(sessionId), 2)
      await rejectsWith(messages.update('msg_missing', { status: 'sent' }), 'not_found')
      assert.equal(await messages.deleteBySession(sessionId), 4)
      assert.equal(await messages.nextSendAfter(sessionId), undefined)
    })
  })

  describe('chats', () => {
    it('should move the last message forward only, counting unread messages whatever their order', async () => {
      const sessionId = await newSession()
      const { chats } = context.repositories
      const [t1, t2] = [tick(), tick()]
      await chats.upsertActivity(sessionId, activity(ANN, 'msg_2', t2, { name: 'Ann', addUnread: 1 }))
      await chats.upsertActivity(sessionId, activity(ANN, 'msg_1', t1, { lid: ANN_LID, addUnread: 1 }))
      await chats.upsertActivity(sessionId, activity(ANN, 'msg_mine', t1))
      const chat = await chats.get(sessionId, ANN)
      assert.deepEqual(
        chat && [chat.name, chat.lid, chat.lastMessageId, chat.lastMessageAt, chat.unreadCount],
        ['Ann', ANN_LID, 'msg_2', t2, 2],
      )
      await chats.setRead(sessionId, ANN)
      assert.equal((await chats.get(sessionId, ANN))?.unreadCount, 0)
      const updated = await chats.update(sessionId, ANN, { archived: true, mutedUntil: t2 })
      assert.deepEqual([updated.archived, updated.pinned, updated.mutedUntil], [true, false, t2])
      await rejectsWith(chats.update(sessionId, BOB, { pinned: true }), 'not_found')
    })

    it('should list chats by last activity, silent chats last, with a stable cursor and a total', async () => {
      const sessionId = await newSession()
      const { chats } = context.repositories
      const [t1, t2] = [tick(), tick()]
      const jid = (n: number) => `1555000000${n}@s.whatsapp.net`
      await chats.upsertMany(sessionId, [{ jid: jid(4), name: 'silent' }])
      await chats.upsertActivity(sessionId, activity(jid(1), 'msg_1', t1))
      await chats.upsertActivity(sessionId, activity(jid(3), 'msg_3', t2))
      await chats.upsertActivity(sessionId, activity(jid(2), 'msg_2', t2))
      const first = await chats.list(sessionId, { limit: 2 })
      const second = await chats.list(sessionId, { limit: 2, cursor: first.nextCursor! })
      assert.deepEqual(jidsOf([...first.items, ...second.items]), [jid(2), jid(3), jid(1), jid(4)])
      assert.deepEqual([first.total, second.total, second.nextCursor], [4, 4, null])
    })

    it("should find chats by name, JID or their contact's names, ignoring case", async () => {
      const sessionId = await newSession()
      const { chats, contacts } = context.repositories
      const club = group(sessionId).jid
      const bobLid = '90002222@lid'
      await chats.upsertMany(sessionId, [
        { jid: club, name: 'Book Club 100%' },
        { jid: ANN },
        { jid: bobLid },
      ])
      await contacts.upsertMany(sessionId, [
        { jid: ANN, name: 'Ann Smith' },
        { jid: BOB, lid: bobLid, pushName: 'Bobby' },
      ])
      const found = async (q: string) => jidsOf((await chats.list(sessionId, { q, limit: 10 })).items)
      assert.deepEqual(await found('book CLUB'), [club])
      assert.deepEqual(await found('smith'), [ANN])
      assert.deepEqual(await found('BOBBY'), [bobLid])
      assert.deepEqual(await found('5550001111'), [ANN])
      assert.deepEqual(await found('100%'), [club])
      assert.deepEqual(await found('1_0'), [])
      assert.equal((await chats.list(sessionId, { q: 'o', limit: 1 })).total, 2)
    })

    it('should write only the given fields in a history sync, never moving the last message back', async () => {
      const sessionId = await newSession()
      const { chats } = context.repositories
      const [old, recent] = [tick(), tick()]
      await chats.upsertActivity(sessionId, activity(ANN, 'msg_recent', recent, { name: 'Ann' }))
      await chats.upsertMany(sessionId, [
        { jid: ANN, lastMessageAt: old, unreadCount: 3 },
        { jid: BOB, archived: true },
        { jid: BOB, pinned: true, lastMessageAt: old },
      ])
      const ann = await chats.get(sessionId, ANN)
      assert.deepEqual(ann && [ann.name, ann.lastMessageAt, ann.lastMessageId, ann.unreadCount], [
        'Ann',
        recent,
        'msg_recent',
        3,
      ])
      const bob = await chats.get(sessionId, BOB)
      assert.deepEqual(bob && [bob.archived, bob.pinned, bob.lastMessageAt, bob.unreadCount], [
        true,
        true,
        old,
        0,
      ])
    })
  })

  describe('contacts', () => {
    it('should merge what each source knows without overwriting known values with nulls', async () => {
      const sessionId = await newSession()
      const { contacts } = context.repositories
      await contacts.upsert(sessionId, { jid: ANN, name: 'Ann', phone: '15550001111', isBusiness: true })
      await contacts.upsert(sessionId, { jid: ANN, name: null, pushName: 'annie', verifiedName: null })
      await contacts.upsertMany(sessionId, [
        { jid: ANN, lid: ANN_LID },
        { jid: ANN, lid: null, verifiedName: 'Ann Co' },
      ])
      const contact = await contacts.get(sessionId, ANN)
      assert.deepEqual(contact && { ...contact, updatedAt: 0 }, {
        sessionId,
        jid: ANN,
        lid: ANN_LID,
        phone: '15550001111',
        name: 'Ann',
        pushName: 'annie',
        verifiedName: 'Ann Co',
        isBusiness: true,
        updatedAt: 0,
      })
      await contacts.upsert(sessionId, { jid: ANN, isBusiness: false })
      assert.equal((await contacts.get(sessionId, ANN))?.isBusiness, false)
    })

    it('should get a contact by phone JID or by LID', async () => {
      const sessionId = await newSession()
      const { contacts } = context.repositories
      await contacts.upsertMany(sessionId, [{ jid: ANN, lid: ANN_LID, name: 'Ann' }, { jid: BOB }])
      assert.equal((await contacts.get(sessionId, ANN_LID))?.jid, ANN)
      assert.equal((await contacts.get(sessionId, ANN))?.name, 'Ann')
      assert.equal(await contacts.get(sessionId, '123@lid'), undefined)
    })

    it('should search names, phone and LID, paging by JID', async () => {
      const sessionId = await newSession()
      const { contacts } = context.repositories
      await contacts.upsertMany(sessionId, [
        { jid: ANN, lid: ANN_LID, name: 'Ann' },
        { jid: BOB, pushName: 'Bobby', phone: '15550002222' },
        { jid: '15550003333@s.whatsapp.net', verifiedName: 'ACME Support' },
      ])
      const found = async (q: string) => jidsOf((await contacts.search(sessionId, { q, limit: 10 })).items)
      assert.deepEqual(await found('bob'), [BOB])
      assert.deepEqual(await found('acme'), ['15550003333@s.whatsapp.net'])
      assert.deepEqual(await found('90001111'), [ANN])
      const first = await contacts.search(sessionId, { q: '1555', limit: 2 })
      const second = await contacts.search(sessionId, { q: '1555', limit: 2, cursor: first.nextCursor! })
      assert.deepEqual(jidsOf([...first.items, ...second.items]), [ANN, BOB, '15550003333@s.whatsapp.net'])
      assert.deepEqual([first.total, second.nextCursor], [3, null])
    })

    it('should map a LID to a phone number both ways, a newer mapping replacing the old', async () => {
      const sessionId = await newSession()
      const { contacts } = context.repositories
      await contacts.mapLid(sessionId, ANN_LID, ANN)
      assert.equal(await contacts.pnForLid(sessionId, ANN_LID), ANN)
      assert.equal(await contacts.lidForPn(sessionId, ANN), ANN_LID)
      await contacts.mapLid(sessionId, ANN_LID, BOB)
      assert.equal(await contacts.pnForLid(sessionId, ANN_LID), BOB)
      assert.equal(await contacts.lidForPn(sessionId, ANN), undefined)
      assert.equal(await contacts.pnForLid(await newSession(), ANN_LID), undefined)
    })
  })

  describe('groups', () => {
    it('should find the groups of a member by phone JID or by LID', async () => {
      const sessionId = await newSession()
      const { groups } = context.repositories
      const annByPhone = group(sessionId)
      const annByLid = group(sessionId, {
        participants: [{ jid: ANN_LID, lid: ANN_LID, phone: '15550001111', role: 'member', name: 'A' }],
      })
      // Ann's number is a substring of this member's: the SQL prefilter matches, the exact check must not.
      const lookalike = group(sessionId, {
        participants: [
          { jid: '155500011119@s.whatsapp.net', lid: null, phone: '155500011119', role: 'admin', name: null },
        ],
      })
      for (const g of [annByPhone, annByLid, lookalike]) await groups.upsert(g)
      const containing = async (jid: string) => jidsOf(await groups.listContaining(sessionId, jid)).sort()
      const both = [annByPhone.jid, annByLid.jid].sort()
      assert.deepEqual(await containing(ANN), both)
      assert.deepEqual(await containing('15550001111:7@s.whatsapp.net'), both)
      assert.deepEqual(await containing(ANN_LID), both)
      assert.deepEqual(await containing(BOB), [])
      assert.deepEqual(await groups.get(sessionId, annByLid.jid), annByLid)
    })

    it('should replace a group on upsert, list it by subject, and forget it on delete', async () => {
      const sessionId = await newSession()
      const { groups } = context.repositories
      const [club, team] = [group(sessionId), group(sessionId, { subject: 'Team' })]
      await groups.upsert(club)
      await groups.upsert(team)
      const renamed = { ...club, subject: 'Readers', announce: true, participants: [], updatedAt: tick() }
      await groups.upsert(renamed)
      assert.deepEqual(await groups.get(sessionId, club.jid), renamed)
      const page = await groups.list(sessionId, { q: 'READ', limit: 10 })
      assert.deepEqual([jidsOf(page.items), page.total], [[club.jid], 1])
      const first = await groups.list(sessionId, { limit: 1 })
      const second = await groups.list(sessionId, { limit: 1, cursor: first.nextCursor! })
      assert.deepEqual(jidsOf([...first.items, ...second.items]), [club.jid, team.jid].sort())
      await groups.delete(sessionId, club.jid)
      assert.equal(await groups.get(sessionId, club.jid), undefined)
    })
  })

  describe('idempotency keys', () => {
    it('should keep the first response for a key and refuse later writers', async () => {
      const [organizationId, other] = [await createOrganization(context), await createOrganization(context)]
      const { idempotency } = context.repositories
      const at = tick()
      const first = { requestHash: 'h1', response: { id: 'msg_1' }, createdAt: at }
      assert.equal(await idempotency.insert({ organizationId, key: 'retry-1', ...first }), true)
      const second = { requestHash: 'h2', response: { id: 'msg_2' }, createdAt: tick() }
      assert.equal(await idempotency.insert({ organizationId, key: 'retry-1', ...second }), false)
      assert.deepEqual(await idempotency.get(organizationId, 'retry-1'), first)
      const entry = { organizationId, key: 'retry-1', ...first }
      assert.equal(await idempotency.insert({ ...entry, organizationId: other }), true)
      assert.ok((await idempotency.deleteOlderThan(at + 1)) >= 2)
      assert.equal(await idempotency.get(organizationId, 'retry-1'), undefined)
    })
  })

  describe('media files and session deletion', () => {
    it('should list media files by message and hand back their paths when deleted', async () => {
      const sessionId = await newSession()
      const { mediaFiles } = context.repositories
      const [a, b, c] = [
        mediaFile(sessionId, 'msg_1'),
        mediaFile(sessionId, 'msg_1'),
        mediaFile(sessionId, 'msg_2'),
      ]
      for (const f of [a, b, c]) await mediaFiles.create(f)
      assert.deepEqual(await mediaFiles.get(sessionId, a.id), a)
      assert.equal(await mediaFiles.get(await newSession(), a.id), undefined)
      assert.deepEqual(await mediaFiles.listByMessage(sessionId, 'msg_1'), [a, b])
      assert.deepEqual((await mediaFiles.deleteBySession(sessionId)).sort(), [a.path, b.path, c.path].sort())
    })

    it("should delete a session's messages, chats, contacts, groups, LID map and media with the session", async () => {
      const organizationId = await createOrganization(context)
      const { id: sessionId } = await createSession(context, organizationId)
      const r = context.repositories
      const stored = message(sessionId)
      const g = group(sessionId)
      await r.messages.insertIfNew(stored)
      await r.chats.upsertActivity(sessionId, activity(ANN, stored.id, stored.timestamp))
      await r.contacts.upsert(sessionId, { jid: ANN, name: 'Ann' })
      await r.contacts.mapLid(sessionId, ANN_LID, ANN)
      await r.groups.upsert(g)
      const media = mediaFile(sessionId, stored.id)
      await r.mediaFiles.create(media)

      await r.sessions.delete(sessionId)
      assert.equal(await r.messages.countBySession(sessionId), 0)
      assert.equal(await r.chats.get(sessionId, ANN), undefined)
      assert.equal(await r.contacts.get(sessionId, ANN), undefined)
      assert.equal(await r.contacts.pnForLid(sessionId, ANN_LID), undefined)
      assert.equal(await r.groups.get(sessionId, g.jid), undefined)
      assert.equal(await r.mediaFiles.get(sessionId, media.id), undefined)
    })
  })
}
