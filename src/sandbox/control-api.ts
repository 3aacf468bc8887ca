import type { FastifyError } from 'fastify'
import { type FastifyPluginAsyncZod, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { ContactContent } from './contact-messages.ts'
import { controlErrorResponses as errors, sendControlError } from './control-errors.ts'
import * as s from './control-schemas.ts'
import { toAccount, toActivity, toContact, toGroup, toInboxMessage, toInfo } from './control-views.ts'
import { SandboxError } from './errors.ts'
import type { ParticipantRole, SimGroup, SimUser } from './network.ts'
import type { SandboxServer } from './server.ts'

export interface SandboxControlRoutesOptions {
  sandbox: SandboxServer
}

/**
 * The sandbox control API: create phones and contacts, scan a QR, type a pairing code,
 * send as a contact, read what linked clients sent, inject faults. JSON in and out; every
 * error is `{ error: { code, message, requestId, details? } }` (see `sendControlError` in
 * control-errors.ts). Each route's schema also documents it for the gateway's OpenAPI document:
 * its operationId, what each answer means and the errors it gives.
 *
 * The plugin is self-contained: it sets the zod validator and serializer compilers, an
 * error handler and the 404 handler on its own encapsulated instance (it is deliberately
 * not wrapped in fastify-plugin), so it mounts unchanged at `/` in the standalone runner
 * and at `/api/v1/sandbox` in the gateway, without touching the parent's settings. Its
 * error handler answers only what it owns (SandboxError, failed validation) and passes
 * everything else — a parent's auth hook failing, bad JSON, bugs — to the parent's error
 * handler; the standalone runner installs `sendControlError` as that parent.
 *
 * The sandbox has no authentication: mount it only on loopback or behind the gateway's.
 */
export const sandboxControlRoutes: FastifyPluginAsyncZod<SandboxControlRoutesOptions> = async (
  app,
  { sandbox },
) => {
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof SandboxError || error.validation) return sendControlError(error, request, reply)
    // rethrown, it reaches the parent's error handler (the gateway's envelope, or ours standalone)
    throw error
  })

  const { network, router } = sandbox
  const person = (phoneNumber: string): SimUser => network.getUser(phoneNumber)
  const ofKind = (phoneNumber: string, kind: 'account' | 'contact'): SimUser => {
    const user = person(phoneNumber)
    if (user.kind !== kind) throw new SandboxError('not_found', `${phoneNumber} is not a ${kind}`)
    return user
  }
  const groupOf = (jid: string | undefined) => (jid ? network.getGroup(jid) : undefined)

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

  // ---- the four fixed paths every tool relies on ------------------------------------------

  app.post(
    '/scan',
    {
      schema: {
        operationId: 'scanSandboxQr',
        body: s.scanBody,
        response: {
          200: s.linkedView.describe('The phone, and the device it linked'),
          ...errors(400, 404, 409, 410),
        },
      },
    },
    async (request) => sandbox.scan(request.body.qr, request.body.phoneNumber),
  )
  app.post(
    '/pairing-code',
    {
      schema: {
        operationId: 'enterSandboxPairingCode',
        body: s.pairingCodeBody,
        response: {
          200: s.linkedView.describe('The phone, and the device it linked'),
          ...errors(400, 404, 422, 504),
        },
      },
    },
    async (request) => sandbox.enterPairingCode(request.body.phoneNumber, request.body.code),
  )
  app.post(
    '/messages',
    // media arrives as base64 in the body
    {
      bodyLimit: 24 * 1024 * 1024,
      schema: {
        operationId: 'sendSandboxMessage',
        body: s.sendMessageBody,
        response: { 201: s.sentView.describe('Sent: its id and time'), ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      const { from, to, replyTo, pushName } = request.body
      const sent = await sandbox.sendAs({ from, to, content: contentOf(request.body), replyTo, pushName })
      return reply.code(201).send(sent)
    },
  )
  app.get(
    '/inbox/:phoneNumber',
    {
      schema: {
        operationId: 'getSandboxInbox',
        params: s.phoneNumberParams,
        response: {
          200: s.inboxView.describe('What linked clients sent to the person'),
          ...errors(400, 404),
        },
      },
    },
    async (request) => ({ messages: person(request.params.phoneNumber).received.map(toInboxMessage) }),
  )

  // ---- what clients did, and what people do back -------------------------------------------

  app.get(
    '/activity/:phoneNumber',
    {
      schema: {
        operationId: 'getSandboxActivity',
        params: s.phoneNumberParams,
        response: {
          200: s.activityListView.describe('Receipts, chat states and presence sent to or as the person'),
          ...errors(400, 404),
        },
      },
    },
    async (request) => {
      const user = person(request.params.phoneNumber)
      return { activity: (router.activity.get(user.phoneNumber) ?? []).map(toActivity) }
    },
  )
  app.post(
    '/receipts',
    {
      schema: {
        operationId: 'sendSandboxReceipts',
        body: s.receiptBody,
        response: { 204: z.null().describe('Sent'), ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const { from, to, messageIds, type, group } = request.body
      router.sendReceipt(person(from), ofKind(to, 'account'), messageIds, type, { group: groupOf(group) })
      return reply.code(204).send(null)
    },
  )
  app.post(
    '/presence',
    {
      schema: {
        operationId: 'sendSandboxPresence',
        body: s.presenceBody,
        response: { 204: z.null().describe('Sent'), ...errors(400, 404) },
      },
    },
    async (request, reply) => {
      const { from, to, state, group } = request.body
      if (state === 'available' || state === 'unavailable') {
        router.sendPresence(person(from), ofKind(to, 'account'), state)
      } else {
        router.sendChatState(person(from), ofKind(to, 'account'), state, groupOf(group))
      }
      return reply.code(204).send(null)
    },
  )

  app.post(
    '/contacts/:phoneNumber/call',
    {
      schema: {
        operationId: 'startSandboxCall',
        params: s.phoneNumberParams,
        body: s.callBody,
        response: { 201: s.callView.describe('Ringing: the call id'), ...errors(400, 404, 409) },
      },
    },
    async (request, reply) => {
      const caller = person(request.params.phoneNumber)
      const account = ofKind(request.body.to, 'account')
      if (account.devices.size === 0) {
        throw new SandboxError('not_linked', `${account.phoneNumber} has no linked device to ring`)
      }
      const { video, ringMs } = request.body
      return reply.code(201).send(sandbox.calls.ring(caller, account, { video, ringMs }))
    },
  )

  // ---- faults, settings, reset ------------------------------------------------------------

  app.post(
    '/faults',
    {
      schema: {
        operationId: 'injectSandboxFault',
        body: s.faultBody,
        response: {
          200: s.faultResultView.describe('How many live connections the fault hit'),
          ...errors(400, 404, 409),
        },
      },
    },
    async (request) => sandbox.injectFault(request.body),
  )
  const settings = () => ({ receipts: { ...router.receipts }, history: { ...sandbox.history } })
  app.get(
    '/settings',
    {
      schema: {
        operationId: 'getSandboxSettings',
        response: { 200: s.settingsView.describe('The receipt delays and history sync') },
      },
    },
    async () => settings(),
  )
  app.put(
    '/settings',
    {
      schema: {
        operationId: 'updateSandboxSettings',
        body: s.settingsBody,
        response: { 200: s.settingsView.describe('The settings, changed'), ...errors(400) },
      },
    },
    async (request) => {
      Object.assign(router.receipts, request.body.receipts)
      if (request.body.history) Object.assign(sandbox.history, request.body.history)
      return settings()
    },
  )
  app.post(
    '/reset',
    {
      schema: {
        operationId: 'resetSandbox',
        response: { 204: z.null().describe('Reset: every person, group and connection is gone') },
      },
    },
    async (_request, reply) => {
      sandbox.reset()
      return reply.code(204).send(null)
    },
  )
}

/** The one content field of a validated message body, as the facade takes it. */
function contentOf(body: Partial<Record<(typeof s.CONTENT_FIELDS)[number], unknown>>): ContactContent {
  const field = s.CONTENT_FIELDS.find((name) => body[name] !== undefined)
  if (!field) throw new SandboxError('invalid_request', 'a message needs one content field')
  // the schema gives each field exactly the shape ContactContent has for it
  return { [field]: body[field] } as ContactContent
}
