import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { GroupsService } from '../../messages/groups.service.ts'
import type { SessionsService } from '../../sessions/sessions.service.ts'
import { allow, principalOf } from '../auth.ts'
import * as s from '../schemas.ts'
import * as m from '../schemas-messaging.ts'
import { groupView } from '../views-messaging.ts'

const tags = ['groups']
const errors = s.errorResponses(400, 404, 409)
const groupParam = s.sessionIdParam.extend({
  groupId: z.string().min(6).max(100).describe('group JID (…@g.us) or its id'),
})
const people = z.array(z.string().min(3).max(100)).min(1).max(256)

export const groupsRoutes: FastifyPluginAsyncZod<{
  sessions: SessionsService
  groups: GroupsService
}> = async (app, { sessions, groups }) => {
  app.get(
    '/sessions/:id/groups',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'listGroups',
        summary: 'Groups the session is in',
        params: s.sessionIdParam,
        querystring: z.object({
          q: z.string().max(100).optional().describe('part of the subject or JID'),
          cursor: z.string().max(300).optional().describe('a page’s nextCursor'),
          limit: z.coerce.number().int().min(1).max(100).default(20),
        }),
        response: { 200: m.listPage(m.group).describe('A page of groups'), ...errors },
      },
    },
    async (request) => {
      const page = await groups.list(
        await sessions.get(principalOf(request), request.params.id),
        request.query,
      )
      return { ...page, items: page.items.map(groupView) }
    },
  )

  app.get(
    '/sessions/:id/groups/:groupId',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'getGroup',
        summary: 'A group with its participants, roles and in-group names',
        params: groupParam,
        response: { 200: m.group.describe('The group'), ...errors },
      },
    },
    async (request) =>
      groupView(
        await groups.get(await sessions.get(principalOf(request), request.params.id), request.params.groupId),
      ),
  )

  app.post(
    '/sessions/:id/groups',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'createGroup',
        summary: 'Create a group',
        params: s.sessionIdParam,
        body: z.object({ subject: z.string().min(1).max(100), participants: people }),
        response: { 201: m.group.describe('The new group'), ...errors, ...s.bodyErrorResponses },
      },
    },
    async (request, reply) => {
      const session = await sessions.get(principalOf(request), request.params.id)
      return reply
        .status(201)
        .send(groupView(await groups.create(session, request.body.subject, request.body.participants)))
    },
  )

  app.patch(
    '/sessions/:id/groups/:groupId',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'updateGroup',
        summary: 'Change the subject and/or description',
        params: groupParam,
        body: z
          .object({
            subject: z.string().min(1).max(100).optional(),
            description: z.string().max(2048).optional(),
          })
          .refine((b) => b.subject !== undefined || b.description !== undefined, {
            message: 'give subject and/or description',
            path: ['subject'],
          }),
        response: { 200: m.group.describe('The group, changed'), ...errors, ...s.bodyErrorResponses },
      },
    },
    async (request) =>
      groupView(
        await groups.update(
          await sessions.get(principalOf(request), request.params.id),
          request.params.groupId,
          request.body,
        ),
      ),
  )

  app.post(
    '/sessions/:id/groups/:groupId/participants',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'changeGroupParticipants',
        summary: 'Add, remove, promote or demote participants',
        params: groupParam,
        body: z.object({ action: z.enum(['add', 'remove', 'promote', 'demote']), participants: people }),
        response: {
          200: m.participantsResult.describe('The group after the change, and a result per person'),
          ...errors,
          ...s.bodyErrorResponses,
        },
      },
    },
    async (request) => {
      const result = await groups.participants(
        await sessions.get(principalOf(request), request.params.id),
        request.params.groupId,
        request.body.action,
        request.body.participants,
      )
      return { group: groupView(result.group), results: result.results }
    },
  )

  app.post(
    '/sessions/:id/groups/:groupId/leave',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'leaveGroup',
        summary: 'Leave a group',
        params: groupParam,
        response: { 204: z.null().describe('Left; the group is forgotten'), ...errors },
      },
    },
    async (request, reply) => {
      await groups.leave(await sessions.get(principalOf(request), request.params.id), request.params.groupId)
      return reply.status(204).send(null)
    },
  )

  for (const [method, revoke] of [
    ['get', false],
    ['delete', true],
  ] as const) {
    app[method](
      '/sessions/:id/groups/:groupId/invite',
      {
        config: allow('operator'),
        schema: {
          tags,
          operationId: revoke ? 'revokeGroupInvite' : 'getGroupInvite',
          summary: revoke ? 'Revoke the invite link (a new one replaces it)' : 'The invite link',
          params: groupParam,
          response: {
            200: m.groupInvite.describe(revoke ? 'The new invite code and link' : 'The invite code and link'),
            ...errors,
          },
        },
      },
      async (request) =>
        groups.invite(
          await sessions.get(principalOf(request), request.params.id),
          request.params.groupId,
          revoke,
        ),
    )
  }
}
