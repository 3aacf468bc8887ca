import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { invalidRequest } from '../../domain/errors.ts'
import type { ConversationsService } from '../../messages/conversations.service.ts'
import type { MessagesService } from '../../messages/messages.service.ts'
import { sendMessageBody } from '../../messages/send-request.ts'
import type { SessionsService } from '../../sessions/sessions.service.ts'
import { allow, principalOf } from '../auth.ts'
import * as s from '../schemas.ts'
import * as m from '../schemas-messaging.ts'
import { chatView, contactView, messageView } from '../views-messaging.ts'

const tags = ['messages']
const errors = s.errorResponses(400, 404, 409)
const chatIdParam = s.sessionIdParam.extend({ chatId: m.chatIdParam })
const listQuery = z.object({
  q: z.string().max(100).optional().describe('part of a name, number or JID'),
  cursor: z.string().max(300).optional().describe('a page’s nextCursor'),
  limit: z.coerce.number().int().min(1).max(100).default(20),
})

export const messagesRoutes: FastifyPluginAsyncZod<{
  sessions: SessionsService
  messages: MessagesService
  conversations: ConversationsService
}> = async (app, { sessions, messages, conversations }) => {
  app.post(
    '/sessions/:id/messages',
    {
      config: allow('operator'),
      bodyLimit: 150 * 1024 * 1024,
      schema: {
        tags,
        operationId: 'sendMessage',
        summary: 'Send a message (any type); accepted for the paced outbound queue',
        description:
          'JSON body, or multipart/form-data with a `message` field (this JSON) and a `file` field for the media. ' +
          'Send an Idempotency-Key header to make retries safe for 24 hours.',
        params: s.sessionIdParam,
        body: sendMessageBody,
        response: {
          202: m.acceptedMessage.describe('Accepted: queued, paced, then reported by events'),
          ...errors,
          ...s.bodyErrorResponses,
        },
      },
      // multipart bodies become the same JSON before validation
      preValidation: async (request) => {
        if (!request.isMultipart()) return
        let message: Record<string, unknown> | undefined
        let file: { base64: string; mimetype: string; fileName: string } | undefined
        for await (const part of request.parts()) {
          if (part.type === 'file') {
            file = {
              base64: (await part.toBuffer()).toString('base64'),
              mimetype: part.mimetype,
              fileName: part.filename,
            }
          } else if (part.fieldname === 'message') {
            try {
              message = JSON.parse(String(part.value))
            } catch {
              throw invalidRequest('message: not JSON', [{ path: 'body.message', message: 'not JSON' }])
            }
          }
        }
        if (!message)
          throw invalidRequest('multipart sends need a `message` field', [
            { path: 'body.message', message: 'missing' },
          ])
        const type = String(message.type ?? '')
        if (file && ['image', 'video', 'audio', 'document', 'sticker'].includes(type)) {
          const media = (message[type] ?? {}) as Record<string, unknown>
          message[type] = { mimetype: file.mimetype, fileName: file.fileName, ...media, base64: file.base64 }
        }
        // validated as the JSON body would be, right after this hook
        request.body = message as typeof request.body
      },
    },
    async (request, reply) => {
      const principal = principalOf(request)
      const session = await sessions.get(principal, request.params.id)
      const key = request.headers['idempotency-key']
      const accepted = await messages.send(
        principal,
        session,
        request.body,
        typeof key === 'string' ? key : undefined,
      )
      return reply.status(202).send(accepted)
    },
  )

  app.get(
    '/sessions/:id/messages/:messageId',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'getMessage',
        summary: 'A message and its status',
        params: s.sessionIdParam.extend({ messageId: m.messageIdParam }),
        response: { 200: m.message.describe('The message'), ...errors },
      },
    },
    async (request) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      return messageView(await messages.get(session, request.params.messageId))
    },
  )

  app.get(
    '/sessions/:id/chats',
    {
      config: allow('viewer'),
      schema: {
        tags: ['chats'],
        operationId: 'listChats',
        summary: 'Chats by last activity; search by name or number',
        params: s.sessionIdParam,
        querystring: listQuery,
        response: { 200: m.listPage(m.chat).describe('A page of chats'), ...errors },
      },
    },
    async (request) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      const page = await conversations.listChats(session, request.query)
      return { ...page, items: page.items.map(chatView) }
    },
  )

  app.get(
    '/sessions/:id/chats/:chatId/messages',
    {
      config: allow('viewer'),
      schema: {
        tags: ['chats'],
        operationId: 'listChatMessages',
        summary: "A chat's messages, newest first; page back with `before`, forward with `after`",
        params: chatIdParam,
        querystring: z.object({
          before: z.string().max(300).optional().describe('a page’s nextCursor: older messages'),
          after: z.string().max(300).optional().describe('a page’s previousCursor: newer messages'),
          limit: z.coerce.number().int().min(1).max(100).default(50),
        }),
        response: { 200: m.timelinePage.describe('A page of messages, newest first'), ...errors },
      },
    },
    async (request) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      const result = await conversations.timeline(session, request.params.chatId, request.query)
      return { ...result, items: result.items.map(messageView) }
    },
  )

  app.post(
    '/sessions/:id/chats/:chatId/read',
    {
      config: allow('operator'),
      schema: {
        tags: ['chats'],
        operationId: 'markChatRead',
        summary: 'Mark a chat read (sends read receipts)',
        params: chatIdParam,
        response: { 204: z.null().describe('Marked read'), ...errors },
      },
    },
    async (request, reply) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      await conversations.markRead(session, request.params.chatId)
      return reply.status(204).send(null)
    },
  )

  app.post(
    '/sessions/:id/presence',
    {
      config: allow('operator'),
      schema: {
        tags: ['chats'],
        operationId: 'setPresence',
        summary: 'Set own presence, or show typing / recording / paused in a chat',
        params: s.sessionIdParam,
        body: z.object({
          state: z.enum(['available', 'unavailable', 'composing', 'recording', 'paused']),
          chatId: m.chatIdParam
            .optional()
            .describe('the chat to show composing, recording or paused in (required for those)'),
        }),
        response: { 204: z.null().describe('Shown'), ...errors, ...s.bodyErrorResponses },
      },
    },
    async (request, reply) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      await conversations.presence(session, request.body.state, request.body.chatId)
      return reply.status(204).send(null)
    },
  )

  app.post(
    '/sessions/:id/numbers/check',
    {
      config: allow('operator'),
      schema: {
        tags: ['contacts'],
        operationId: 'checkNumbers',
        summary: 'Which phone numbers are on WhatsApp',
        params: s.sessionIdParam,
        body: z.object({
          numbers: z
            .array(z.string().min(3).max(40))
            .min(1)
            .max(50)
            .describe('phone numbers with country code'),
        }),
        response: {
          200: m.numbersCheck.describe('A result per number, in the order given'),
          ...errors,
          ...s.bodyErrorResponses,
        },
      },
    },
    async (request) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      return { results: await conversations.checkNumbers(session, request.body.numbers) }
    },
  )

  app.get(
    '/sessions/:id/contacts',
    {
      config: allow('viewer'),
      schema: {
        tags: ['contacts'],
        operationId: 'listContacts',
        summary: 'People the session has seen; search name, push name, phone or LID',
        params: s.sessionIdParam,
        querystring: listQuery,
        response: { 200: m.listPage(m.contact).describe('A page of contacts'), ...errors },
      },
    },
    async (request) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      const page = await conversations.searchContacts(session, request.query)
      return { ...page, items: page.items.map(contactView) }
    },
  )

  app.get(
    '/sessions/:id/contacts/:contactId',
    {
      config: allow('viewer'),
      schema: {
        tags: ['contacts'],
        operationId: 'getContact',
        summary:
          'A contact, their direct chat and the groups they share with the session (with their name in each)',
        params: s.sessionIdParam.extend({ contactId: m.contactIdParam }),
        response: { 200: m.contactDetail.describe('The contact'), ...errors },
      },
    },
    async (request) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      const found = await conversations.contact(session, request.params.contactId)
      return { ...contactView(found.contact), chat: found.chat && chatView(found.chat), groups: found.groups }
    },
  )

  app.get(
    '/sessions/:id/media/:mediaId',
    {
      config: allow('viewer'),
      schema: {
        tags: ['messages'],
        operationId: 'getMedia',
        summary: 'Downloaded media of a received message',
        params: s.sessionIdParam.extend({
          mediaId: z
            .string()
            .regex(/^med_[a-z0-9]+$/, 'a med_… id')
            .describe('a message’s media.mediaId (med_…), set once the file is downloaded'),
        }),
        response: {
          200: {
            description: 'The file, with its MIME type as Content-Type',
            content: { 'application/octet-stream': { schema: z.string().meta({ format: 'binary' }) } },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      const file = await conversations.media(session, request.params.mediaId)
      // Fastify sends a stream as it is, unserialized; the 200 schema only documents the bytes.
      return reply
        .type(file.mimetype)
        .header('content-length', file.size)
        .header('x-content-type-options', 'nosniff')
        .send(file.stream as never)
    },
  )
}
