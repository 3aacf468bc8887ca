import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { MessageActionsService } from '../../messages/message-actions.service.ts'
import type { SessionsService } from '../../sessions/sessions.service.ts'
import { allow, principalOf } from '../auth.ts'
import * as s from '../schemas.ts'
import * as m from '../schemas-messaging.ts'
import { messageView } from '../views-messaging.ts'

const tags = ['messages']
const errors = s.errorResponses(400, 404, 409)
const params = s.sessionIdParam.extend({ messageId: m.messageIdParam })

export const messageActionsRoutes: FastifyPluginAsyncZod<{
  sessions: SessionsService
  actions: MessageActionsService
}> = async (app, { sessions, actions }) => {
  app.patch(
    '/sessions/:id/messages/:messageId',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'editMessage',
        summary: 'Edit a sent message (its text or caption)',
        params,
        body: z.object({ text: z.string().min(1, 'empty text').max(65_536) }),
        response: { 200: m.message.describe('The message, edited'), ...errors, ...s.bodyErrorResponses },
      },
    },
    async (request) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      return messageView(await actions.edit(session, request.params.messageId, request.body.text))
    },
  )

  app.delete(
    '/sessions/:id/messages/:messageId',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'deleteMessage',
        summary: 'Delete a message for everyone',
        params,
        response: { 200: m.message.describe('The message, deleted for everyone'), ...errors },
      },
    },
    async (request) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      return messageView(await actions.delete(session, request.params.messageId))
    },
  )

  app.post(
    '/sessions/:id/messages/:messageId/forward',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'forwardMessage',
        summary: 'Forward a stored message to another chat (queued and paced like any send)',
        params,
        body: z.object({
          to: z.string().min(3).max(100).describe('phone number, user JID, LID or group JID to forward to'),
        }),
        response: {
          202: m.acceptedMessage.describe('Accepted: the copy is queued and paced'),
          ...errors,
          ...s.bodyErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      return reply.status(202).send(await actions.forward(session, request.params.messageId, request.body.to))
    },
  )
}
