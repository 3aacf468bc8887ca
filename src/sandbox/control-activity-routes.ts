import { z } from 'zod'
import type { ContactContent } from './contact-messages.ts'
import type { ControlApp, SandboxLookups } from './control-api.ts'
import { controlErrorResponses as errors } from './control-errors.ts'
import * as s from './control-schemas.ts'
import { toActivity, toInboxMessage } from './control-views.ts'
import { SandboxError } from './errors.ts'
import type { SandboxServer } from './server.ts'

/**
 * What happens in the sandbox: the four fixed paths every tool relies on (a phone scans a
 * QR, types a pairing code, a contact sends, an account's inbox), then receipts, presence,
 * calls, faults, settings and the reset.
 */
export function activityRoutes(
  app: ControlApp,
  sandbox: SandboxServer,
  { person, ofKind, groupOf }: SandboxLookups,
): void {
  const { router } = sandbox
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
