import type { ControlApp, SandboxLookups } from './control-api.ts'
import { controlErrorResponses as errors } from './control-errors.ts'
import * as s from './control-schemas.ts'
import { toAccount, toContact, toGroup, toInboxMessage, toInfo } from './control-views.ts'
import { SandboxError } from './errors.ts'
import type { ParticipantRole, SimGroup, SimUser } from './network.ts'
import type { SandboxServer } from './server.ts'

/**
 * The sandbox's world: the sandbox itself, phones (accounts) and contacts, groups and their
 * members, and what an account's app state says (its chats, its address book).
 */
export function worldRoutes(
  app: ControlApp,
  sandbox: SandboxServer,
  { person, ofKind }: SandboxLookups,
): void {
  const { network, router } = sandbox
  app.get(
    '/',
    {
      schema: {
        operationId: 'getSandboxInfo',
        response: { 200: s.infoView.describe('Where clients connect, and what the sandbox holds') },
      },
    },
    async () => toInfo(sandbox),
  )

  // ---- accounts: the numbers clients link to ----------------------------------------------

  app.post(
    '/accounts',
    {
      schema: {
        operationId: 'createSandboxAccount',
        body: s.createAccountBody,
        response: { 201: s.accountView.describe('The account, created'), ...errors(400, 409) },
      },
    },
    async (request, reply) => {
      const user = network.createUser({ ...request.body, kind: 'account' })
      return reply.code(201).send(toAccount(sandbox, user))
    },
  )
  app.get(
    '/accounts',
    {
      schema: {
        operationId: 'listSandboxAccounts',
        response: { 200: s.accountListView.describe('Every account') },
      },
    },
    async () => ({ accounts: network.users('account').map((user) => toAccount(sandbox, user)) }),
  )
  app.get(
    '/accounts/:phoneNumber',
    {
      schema: {
        operationId: 'getSandboxAccount',
        params: s.phoneNumberParams,
        response: { 200: s.accountView.describe('The account'), ...errors(400, 404) },
      },
    },
    async (request) => toAccount(sandbox, ofKind(request.params.phoneNumber, 'account')),
  )

  // ---- contacts: the simulated people who talk to accounts --------------------------------

  app.post(
    '/contacts',
    {
      schema: {
        operationId: 'createSandboxContact',
        body: s.createContactBody,
        response: { 201: s.contactView.describe('The contact, created'), ...errors(400, 409) },
      },
    },
    async (request, reply) => {
      const { addressing, ...identity } = request.body
      const user = network.createUser({ ...identity, kind: 'contact' })
      if (addressing) user.addressing = addressing
      return reply.code(201).send(toContact(user))
    },
  )
  app.get(
    '/contacts',
    {
      schema: {
        operationId: 'listSandboxContacts',
        response: { 200: s.contactListView.describe('Every contact') },
      },
    },
    async () => ({ contacts: network.users('contact').map(toContact) }),
  )
  app.get(
    '/contacts/:phoneNumber',
    {
      schema: {
        operationId: 'getSandboxContact',
        params: s.phoneNumberParams,
        response: { 200: s.contactView.describe('The contact'), ...errors(400, 404) },
      },
    },
    async (request) => toContact(ofKind(request.params.phoneNumber, 'contact')),
  )
  app.patch(
    '/contacts/:phoneNumber',
    {
      schema: {
        operationId: 'updateSandboxContact',
        params: s.phoneNumberParams,
        body: s.updateContactBody,
        response: { 200: s.contactView.describe('The contact, changed'), ...errors(400, 404) },
      },
    },
    async (request) => {
      const user = ofKind(request.params.phoneNumber, 'contact')
      const { online, pushName, addressing } = request.body
      if (pushName !== undefined) user.pushName = pushName
      if (addressing !== undefined) user.addressing = addressing
      // through the router: accounts see the presence change and held messages are taken
      if (online !== undefined) await router.setOnline(user, online)
      return toContact(user)
    },
  )

  // ---- groups -----------------------------------------------------------------------------

  app.post(
    '/groups',
    {
      schema: {
        operationId: 'createSandboxGroup',
        body: s.createGroupBody,
        response: { 201: s.groupView.describe('The group, created'), ...errors(400) },
      },
    },
    async (request, reply) => reply.code(201).send(toGroup(sandbox, sandbox.createGroup(request.body))),
  )
  app.get(
    '/groups',
    {
      schema: {
        operationId: 'listSandboxGroups',
        response: { 200: s.groupListView.describe('Every group') },
      },
    },
    async () => ({ groups: network.allGroups().map((group) => toGroup(sandbox, group)) }),
  )
  app.get(
    '/groups/:jid',
    {
      schema: {
        operationId: 'getSandboxGroup',
        params: s.groupParams,
        response: { 200: s.groupView.describe('The group'), ...errors(400, 404) },
      },
    },
    async (request) => toGroup(sandbox, network.getGroup(request.params.jid)),
  )
  app.get(
    '/groups/:jid/inbox',
    {
      schema: {
        operationId: 'getSandboxGroupInbox',
        params: s.groupParams,
        response: { 200: s.inboxView.describe('What linked clients sent to the group'), ...errors(400, 404) },
      },
    },
    async (request) => ({ messages: network.getGroup(request.params.jid).received.map(toInboxMessage) }),
  )

  // A member changes the group as a linked client would, and every member's devices are told.
  const member = (group: SimGroup, phoneNumber: string): { user: SimUser; role: ParticipantRole } => {
    const user = person(phoneNumber)
    const role = group.participants.get(user.phoneNumber)
    if (!role) throw new SandboxError('forbidden', `${phoneNumber} is not a member of ${group.jid}`)
    return { user, role }
  }
  app.patch(
    '/groups/:jid',
    {
      schema: {
        operationId: 'updateSandboxGroup',
        params: s.groupParams,
        body: s.updateGroupBody,
        response: { 200: s.groupView.describe('The group, changed'), ...errors(400, 403, 404) },
      },
    },
    async (request) => {
      const group = network.getGroup(request.params.jid)
      const { by, subject, description, announce, restrict } = request.body
      const { user, role } = member(group, by)
      const admin = role !== 'member'
      if (!admin && (announce !== undefined || restrict !== undefined)) {
        throw new SandboxError('forbidden', `only admins change the settings of ${group.jid}`)
      }
      if (!admin && group.restrict && (subject !== undefined || description !== undefined)) {
        throw new SandboxError('forbidden', `only admins edit the info of ${group.jid}`)
      }
      if (subject !== undefined) sandbox.groupChanges.setSubject(group, user, subject)
      if (description !== undefined) sandbox.groupChanges.setDescription(group, user, description)
      sandbox.groupChanges.setSettings(group, user, { announce, restrict })
      return toGroup(sandbox, group)
    },
  )
  app.post(
    '/groups/:jid/participants',
    {
      schema: {
        operationId: 'changeSandboxGroupParticipants',
        params: s.groupParams,
        body: s.groupParticipantsBody,
        response: {
          200: s.participantsResultView.describe('The group after the change, and a result per person'),
          ...errors(400, 403, 404),
        },
      },
    },
    async (request) => {
      const group = network.getGroup(request.params.jid)
      const { by, action, participants } = request.body
      const { user, role } = member(group, by)
      const leaving = action === 'remove' && participants.every((p) => p === user.phoneNumber)
      if (role === 'member' && !leaving) {
        throw new SandboxError('forbidden', `only admins ${action} participants of ${group.jid}`)
      }
      const results = sandbox.groupChanges.changeParticipants(group, user, action, participants.map(person))
      return {
        group: toGroup(sandbox, group),
        results: results.map((r) => ({ phoneNumber: r.user.phoneNumber, code: r.code })),
      }
    },
  )

  // ---- the account's own phone: app state it syncs to linked devices -----------------------

  app.patch(
    '/accounts/:phoneNumber/chats/:chat',
    {
      schema: {
        operationId: 'changeSandboxAccountChat',
        params: s.accountChatParams,
        body: s.chatStateBody,
        response: {
          200: s.appStateView.describe('The changes synced to linked devices'),
          ...errors(400, 404),
        },
      },
    },
    async (request) => {
      const account = ofKind(request.params.phoneNumber, 'account')
      return { applied: await sandbox.appState.changeChat(account, request.params.chat, request.body) }
    },
  )
  app.put(
    '/accounts/:phoneNumber/address-book/:contactNumber',
    {
      schema: {
        operationId: 'saveSandboxAddressBookContact',
        params: s.addressBookParams,
        body: s.addressBookBody,
        response: {
          200: s.appStateView.describe('The change synced to linked devices'),
          ...errors(400, 404),
        },
      },
    },
    async (request) => {
      const account = ofKind(request.params.phoneNumber, 'account')
      const contact = person(request.params.contactNumber)
      return { applied: [await sandbox.appState.saveContact(account, contact, request.body)] }
    },
  )
}
