import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { SimGroup, SimUser } from '../../src/sandbox/network.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertError, assertInvalidField } from '../support/http-assertions.ts'
import { createLinkedSession } from '../support/sessions.ts'
import { eventually } from '../support/wait.ts'

const ACCOUNT = '15550700001'
const S = '/api/v1/sessions/club'

interface Participant {
  jid: string
  lid: string | null
  phone: string | null
  role: string
  name: string | null
}
interface GroupBody {
  id: string
  subject: string
  description: string | null
  owner: string | null
  participants: Participant[]
}
interface ContactBody {
  id: string
  lid: string | null
  phone: string | null
  pushName: string | null
  chat: { id: string } | null
  groups: { jid: string; subject: string; role: string; nameInGroup: string | null }[]
}

describe('contacts, groups and presence through the API, against the sandbox', () => {
  let gateway: TestGateway
  let carol: SimUser
  let dan: SimUser
  let erin: SimUser
  let bookClub: SimGroup
  let nightShift: SimGroup

  before(async () => {
    gateway = await startTestGateway()
    const { network } = gateway.sandbox
    network.createUser({ kind: 'account', phoneNumber: ACCOUNT, pushName: 'Club desk' })
    carol = network.createUser({ kind: 'contact', phoneNumber: '15550700101', pushName: 'Carol' })
    dan = network.createUser({ kind: 'contact', phoneNumber: '15550700102', pushName: 'Dan' })
    erin = network.createUser({ kind: 'contact', phoneNumber: '15550700103', pushName: 'Erin' })
    // a group the account is already in when it links
    bookClub = gateway.sandbox.createGroup({
      subject: 'Book club',
      creator: carol.phoneNumber,
      participants: [ACCOUNT, dan.phoneNumber],
      names: { [carol.phoneNumber]: 'Caz' },
    })
    await createLinkedSession(gateway, 'club', ACCOUNT)
    await gateway.request('PATCH', S, { body: { config: { pacing: { enabled: false } } } })
    // and one it is added to afterwards, where Carol goes by another name
    nightShift = gateway.sandbox.createGroup({
      subject: 'Night shift',
      creator: dan.phoneNumber,
      participants: [ACCOUNT, carol.phoneNumber],
      names: { [carol.phoneNumber]: 'Carol N.' },
    })
    const said = async (to: string, text: string) => {
      const { id } = await gateway.sandbox.sendAs({ from: carol.phoneNumber, to, content: { text } })
      await eventually(
        async () => (await gateway.request('GET', `${S}/messages/${id}`)).statusCode === 200,
        `"${text}" to be stored`,
      )
    }
    await said(ACCOUNT, 'hi, it is Carol')
    await said(bookClub.jid, 'chapter 3 tonight')
    await said(nightShift.jid, 'who has the keys?')
  })
  after(async () => {
    await gateway.close()
  })

  const get = async <T>(url: string) => {
    const response = await gateway.request('GET', url)
    assert.equal(response.statusCode, 200, response.body)
    return response.json() as T
  }
  const participants = (group: SimGroup) => Object.fromEntries(group.participants)

  describe('contacts', () => {
    const searches: [string, () => string][] = [
      ['push name', () => 'caro'],
      ['phone number', () => carol.phoneNumber.slice(-7)],
      ['LID', () => carol.lid],
    ]
    for (const [by, query] of searches) {
      it(`finds a contact by ${by}`, async () => {
        const page = await get<{ items: ContactBody[]; total: number }>(`${S}/contacts?q=${query()}`)
        assert.deepEqual(
          page.items.map((c) => c.id),
          [carol.jid],
          'one contact per person, whichever address WhatsApp used',
        )
        assert.equal(page.total, 1)
        const [found] = page.items
        assert.equal(found?.lid, carol.lidJid)
        assert.equal(found?.phone, carol.phoneNumber)
        assert.equal(found?.pushName, 'Carol', 'a name used in a group is not taken for the push name')
      })
    }

    it('finds nobody for a query that matches nobody', async () => {
      const page = await get<{ items: ContactBody[] }>(`${S}/contacts?q=zebra`)
      assert.deepEqual(page.items, [])
    })

    it('answers a contact with their direct chat and every group shared, with their name in each', async () => {
      for (const id of [carol.phoneNumber, carol.jid, `${carol.phoneNumber}@c.us`, carol.lidJid]) {
        const contact = await get<ContactBody>(`${S}/contacts/${id}`)
        assert.equal(contact.id, carol.jid, `looked up as ${id}`)
        assert.equal(contact.chat?.id, carol.jid)
        assert.deepEqual(
          [...contact.groups].sort((a, b) => a.subject.localeCompare(b.subject)),
          [
            { jid: bookClub.jid, subject: 'Book club', role: 'superadmin', nameInGroup: 'Caz' },
            { jid: nightShift.jid, subject: 'Night shift', role: 'member', nameInGroup: 'Carol N.' },
          ],
        )
      }
    })
  })

  describe('groups', () => {
    it('lists the groups the session is in, and shows one with roles and in-group names', async () => {
      const page = await get<{ items: GroupBody[] }>(`${S}/groups`)
      assert.deepEqual(page.items.map((g) => g.subject).sort(), ['Book club', 'Night shift'])
      const group = await get<GroupBody>(`${S}/groups/${bookClub.jid}`)
      assert.equal(group.id, bookClub.jid)
      assert.equal(group.subject, 'Book club')
      const byPhone = Object.fromEntries(group.participants.map((p) => [p.phone, p]))
      assert.deepEqual(byPhone[carol.phoneNumber], {
        jid: carol.jid,
        lid: carol.lidJid,
        phone: carol.phoneNumber,
        role: 'superadmin',
        name: 'Caz',
      })
      assert.equal(byPhone[ACCOUNT]?.role, 'member')
      assert.equal(byPhone[dan.phoneNumber]?.role, 'member')
      // also by the bare group id
      const bare = await get<GroupBody>(`${S}/groups/${bookClub.id}`)
      assert.equal(bare.id, bookClub.jid)
      const found = await get<{ items: GroupBody[] }>(`${S}/groups?q=night`)
      assert.deepEqual(
        found.items.map((g) => g.id),
        [nightShift.jid],
      )
    })

    it('creates a group, changes it and its members, shares and revokes its link, and leaves it', async () => {
      const created = await gateway.request('POST', `${S}/groups`, {
        body: { subject: 'Launch crew', participants: [carol.jid, `+${dan.phoneNumber}`] },
      })
      assert.equal(created.statusCode, 201, created.body)
      const group = created.json() as GroupBody
      const sim = gateway.sandbox.network.getGroup(group.id)
      assert.equal(sim.subject, 'Launch crew')
      assert.deepEqual(participants(sim), {
        [ACCOUNT]: 'superadmin',
        [carol.phoneNumber]: 'member',
        [dan.phoneNumber]: 'member',
      })
      assert.deepEqual(group.participants.map((p) => p.phone).sort(), [
        ACCOUNT,
        carol.phoneNumber,
        dan.phoneNumber,
      ])
      const G = `${S}/groups/${group.id}`

      const patched = await gateway.request('PATCH', G, {
        body: { subject: 'Launch crew 🚀', description: 'Friday at 9' },
      })
      assert.equal(patched.statusCode, 200, patched.body)
      assert.equal(patched.json().subject, 'Launch crew 🚀')
      assert.equal(patched.json().description, 'Friday at 9')
      assert.equal(sim.subject, 'Launch crew 🚀')
      assert.equal(sim.description, 'Friday at 9')

      const change = async (action: string, people: string[]) => {
        const response = await gateway.request('POST', `${G}/participants`, {
          body: { action, participants: people },
        })
        assert.equal(response.statusCode, 200, response.body)
        return response.json() as { group: GroupBody; results: { jid: string; status: string }[] }
      }
      const added = await change('add', [erin.phoneNumber])
      assert.deepEqual(added.results, [{ jid: erin.jid, status: '200' }])
      assert.equal(sim.participants.get(erin.phoneNumber), 'member')
      assert.ok(added.group.participants.some((p) => p.phone === erin.phoneNumber))
      const again = await change('add', [erin.phoneNumber, carol.jid])
      assert.deepEqual(again.results, [
        { jid: erin.jid, status: '409' },
        { jid: carol.jid, status: '409' },
      ])
      const promoted = await change('promote', [erin.jid])
      assert.deepEqual(promoted.results, [{ jid: erin.jid, status: '200' }])
      assert.equal(sim.participants.get(erin.phoneNumber), 'admin')
      assert.equal(promoted.group.participants.find((p) => p.phone === erin.phoneNumber)?.role, 'admin')
      const demoted = await change('demote', [erin.lidJid])
      assert.deepEqual(demoted.results, [{ jid: erin.jid, status: '200' }])
      assert.equal(sim.participants.get(erin.phoneNumber), 'member')
      const removed = await change('remove', [erin.jid])
      assert.deepEqual(removed.results, [{ jid: erin.jid, status: '200' }])
      assert.equal(sim.participants.has(erin.phoneNumber), false)
      assert.ok(!removed.group.participants.some((p) => p.phone === erin.phoneNumber))
      const stranger = await change('remove', [erin.jid])
      assert.deepEqual(stranger.results, [{ jid: erin.jid, status: '404' }])

      const link = await get<{ code: string; link: string }>(`${G}/invite`)
      assert.equal(link.code, sim.inviteCode)
      assert.equal(link.link, `https://chat.whatsapp.com/${sim.inviteCode}`)
      const revoked = await gateway.request('DELETE', `${G}/invite`)
      assert.equal(revoked.statusCode, 200, revoked.body)
      assert.notEqual(revoked.json().code, link.code)
      assert.equal(revoked.json().code, sim.inviteCode)

      const left = await gateway.request('POST', `${G}/leave`)
      assert.equal(left.statusCode, 204, left.body)
      assert.equal(sim.participants.has(ACCOUNT), false)
      assertError(await gateway.request('GET', G), 404, 'not_found')
      const page = await get<{ items: GroupBody[] }>(`${S}/groups`)
      assert.ok(!page.items.some((g) => g.id === group.id))
    })

    it("refuses a change WhatsApp does not allow the session, with WhatsApp's reason", async () => {
      // the account is a plain member of the book club
      const response = await gateway.request('POST', `${S}/groups/${bookClub.jid}/participants`, {
        body: { action: 'add', participants: [erin.jid] },
      })
      assertError(response, 403, 'forbidden')
      assert.equal(bookClub.participants.has(erin.phoneNumber), false)
    })

    it('answers 404 for a group that does not exist', async () => {
      assertError(await gateway.request('GET', `${S}/groups/120363000000000001@g.us`), 404, 'not_found')
    })
  })

  describe('presence and numbers', () => {
    it('shows typing and recording in a chat, which the contact sees', async () => {
      for (const state of ['composing', 'recording', 'paused']) {
        const response = await gateway.request('POST', `${S}/presence`, {
          body: { state, chatId: carol.phoneNumber },
        })
        assert.equal(response.statusCode, 204, response.body)
        await eventually(
          () =>
            gateway.sandbox.router.activity
              .get(carol.phoneNumber)
              ?.some((a) => a.kind === 'chatstate' && a.value === state),
          `Carol to see ${state}`,
        )
      }
    })

    it('sets its own presence', async () => {
      const response = await gateway.request('POST', `${S}/presence`, { body: { state: 'available' } })
      assert.equal(response.statusCode, 204, response.body)
      await eventually(
        () =>
          gateway.sandbox.router.activity
            .get(ACCOUNT)
            ?.some((a) => a.kind === 'presence' && a.value === 'available'),
        'the account to be available',
      )
    })

    it('checks which numbers are on WhatsApp', async () => {
      const response = await gateway.request('POST', `${S}/numbers/check`, {
        body: { numbers: [`+${carol.phoneNumber}`, '15559990000'] },
      })
      assert.equal(response.statusCode, 200, response.body)
      assert.deepEqual(response.json().results, [
        { input: `+${carol.phoneNumber}`, jid: carol.jid, exists: true },
        { input: '15559990000', jid: '15559990000@s.whatsapp.net', exists: false },
      ])
    })
  })

  describe('errors', () => {
    const bad: [string, 'GET' | 'POST' | 'PATCH' | 'DELETE', string, unknown, string][] = [
      ['a malformed contact id', 'GET', `${S}/contacts/carol!`, undefined, 'params.contactId'],
      ['a contact limit above 100', 'GET', `${S}/contacts?limit=101`, undefined, 'querystring.limit'],
      ['a group limit of 0', 'GET', `${S}/groups?limit=0`, undefined, 'querystring.limit'],
      ['a chat limit that is not a number', 'GET', `${S}/chats?limit=ten`, undefined, 'querystring.limit'],
      ['a malformed group id', 'GET', `${S}/groups/not-a-group`, undefined, 'params.groupId'],
      [
        'a user JID as group id',
        'GET',
        `${S}/groups/15550700101@s.whatsapp.net`,
        undefined,
        'params.groupId',
      ],
      [
        'a group without participants',
        'POST',
        `${S}/groups`,
        { subject: 'x', participants: [] },
        'body.participants',
      ],
      [
        'a group without subject',
        'POST',
        `${S}/groups`,
        { subject: '', participants: ['15550700101'] },
        'body.subject',
      ],
      [
        'a malformed participant',
        'POST',
        `${S}/groups`,
        { subject: 'x', participants: ['15550700101', 'nobody'] },
        'body.participants.1',
      ],
      [
        'an unknown participant action',
        'POST',
        `${S}/groups/${'120363000000000001@g.us'}/participants`,
        { action: 'kick', participants: ['15550700101'] },
        'body.action',
      ],
      [
        'a participant change without participants',
        'POST',
        `${S}/groups/${'120363000000000001@g.us'}/participants`,
        { action: 'add', participants: [] },
        'body.participants',
      ],
      [
        'a group change with nothing to change',
        'PATCH',
        `${S}/groups/${'120363000000000001@g.us'}`,
        {},
        'body.subject',
      ],
      ['an unknown presence', 'POST', `${S}/presence`, { state: 'dancing' }, 'body.state'],
      ['typing without a chat', 'POST', `${S}/presence`, { state: 'composing' }, 'body.chatId'],
      [
        'typing in a malformed chat',
        'POST',
        `${S}/presence`,
        { state: 'composing', chatId: 'x@y' },
        'body.chatId',
      ],
      ['an empty number check', 'POST', `${S}/numbers/check`, { numbers: [] }, 'body.numbers'],
      ['a number that is not one', 'POST', `${S}/numbers/check`, { numbers: ['12ab'] }, 'body.numbers.0'],
    ]
    for (const [what, method, url, body, path] of bad) {
      it(`refuses ${what} with 400 naming ${path}`, async () => {
        assertInvalidField(await gateway.request(method, url, body === undefined ? {} : { body }), path)
      })
    }

    it('answers 404 for a contact the session has never seen', async () => {
      assertError(await gateway.request('GET', `${S}/contacts/15550799999`), 404, 'not_found')
    })
  })

  describe('security', () => {
    it('needs a key for contacts, groups and presence', async () => {
      for (const [method, url] of [
        ['GET', `${S}/contacts`],
        ['GET', `${S}/contacts/${carol.jid}`],
        ['GET', `${S}/groups`],
        ['POST', `${S}/groups/${bookClub.jid}/leave`],
        ['POST', `${S}/presence`],
      ] as const) {
        assertError(await gateway.request(method, url, { key: null }), 401, 'unauthorized')
      }
      assert.equal(bookClub.participants.has(ACCOUNT), true)
    })
  })
})
