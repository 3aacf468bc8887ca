import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import QRCode from 'qrcode'
import { z } from 'zod'
import { roleAtLeast } from '../../accounts/api-key.types.ts'
import type { SessionsService } from '../../sessions/sessions.service.ts'
import { allow, principalOf } from '../auth.ts'
import * as s from '../schemas.ts'
import { iso, sessionView } from '../views.ts'

const tags = ['sessions']
const errors = s.errorResponses(400, 404, 409)

export const sessionsRoutes: FastifyPluginAsyncZod<{ sessions: SessionsService }> = async (
  app,
  { sessions },
) => {
  app.post(
    '/sessions',
    {
      config: allow('operator', 'new sessions'),
      schema: {
        tags,
        operationId: 'createSession',
        summary: 'Create a session (and start it, unless start is false)',
        body: s.createSessionBody,
        response: {
          201: s.sessionView.describe('The session, created'),
          ...errors,
          ...s.bodyErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const session = await sessions.create(principalOf(request), request.body)
      return reply.status(201).send(sessionView(session))
    },
  )

  app.get(
    '/sessions',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'listSessions',
        summary: 'List sessions',
        querystring: s.listSessionsQuery,
        response: {
          200: z
            .object({
              items: z.array(s.sessionView),
              nextCursor: z.string().nullable(),
              total: z.number(),
            })
            .describe('A page of sessions'),
          ...errors,
        },
      },
    },
    async (request) => {
      const principal = principalOf(request)
      const page = await sessions.list(principal, request.query)
      const options = { headerValues: roleAtLeast(principal.role, 'operator') }
      return { ...page, items: page.items.map((session) => sessionView(session, options)) }
    },
  )

  app.get(
    '/sessions/:id',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'getSession',
        summary: 'Get a session',
        params: s.sessionIdParam,
        response: { 200: s.sessionView.describe('The session'), ...errors },
      },
    },
    async (request) => {
      const principal = principalOf(request)
      const session = await sessions.get(principal, request.params.id)
      return sessionView(session, { headerValues: roleAtLeast(principal.role, 'operator') })
    },
  )

  app.patch(
    '/sessions/:id',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'updateSession',
        summary: 'Rename or reconfigure a session',
        params: s.sessionIdParam,
        body: s.updateSessionBody,
        response: {
          200: z
            .object({ session: s.sessionView, restartRequired: z.array(z.string()) })
            .describe('The session, changed, and the settings that apply once it restarts'),
          ...errors,
          ...s.bodyErrorResponses,
        },
      },
    },
    async (request) => {
      const result = await sessions.update(principalOf(request), request.params.id, request.body)
      return { session: sessionView(result.session), restartRequired: result.restartRequired }
    },
  )

  app.delete(
    '/sessions/:id',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'deleteSession',
        summary: 'Delete a session: stop it, log it out when linked, remove its credentials and data',
        params: s.sessionIdParam,
        response: { 204: z.null().describe('Deleted'), ...errors },
      },
    },
    async (request, reply) => {
      await sessions.delete(principalOf(request), request.params.id)
      return reply.status(204).send(null)
    },
  )

  for (const action of ['start', 'stop', 'restart', 'logout'] as const) {
    app.post(
      `/sessions/:id/${action}`,
      {
        config: allow('operator'),
        schema: {
          tags,
          operationId: `${action}Session`,
          summary: `${action[0]?.toUpperCase()}${action.slice(1)} a session`,
          params: s.sessionIdParam,
          response: { 200: s.sessionView.describe(`The session, after the ${action}`), ...errors },
        },
      },
      async (request) => sessionView(await sessions[action](principalOf(request), request.params.id)),
    )
  }

  app.get(
    '/sessions/:id/qr',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'getSessionQr',
        summary: 'The QR to scan: JSON with a PNG data URL, or ?format=png / ?format=raw',
        params: s.sessionIdParam,
        querystring: s.qrQuery,
        response: {
          200: s.qrView
            .or(z.string())
            .or(z.instanceof(Buffer))
            .describe('The QR: JSON by default, the PNG with ?format=png, its text with ?format=raw'),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const qr = await sessions.qr(principalOf(request), request.params.id)
      if (request.query.format === 'raw') return reply.type('text/plain').send(qr.value)
      if (request.query.format === 'png') {
        return reply.type('image/png').send(await QRCode.toBuffer(qr.value, { margin: 2, width: 320 }))
      }
      return {
        value: qr.value,
        image: await QRCode.toDataURL(qr.value, { margin: 2, width: 320 }),
        expiresAt: iso(qr.expiresAt),
        status: qr.status,
      }
    },
  )

  app.post(
    '/sessions/:id/pairing-code',
    {
      config: allow('operator'),
      schema: {
        tags,
        operationId: 'requestPairingCode',
        summary: 'Link by phone number: an 8-character code to type on the phone',
        params: s.sessionIdParam,
        body: s.pairingCodeBody,
        response: {
          200: s.pairingCodeView.describe('The code to type on the phone, and when it expires'),
          ...errors,
          ...s.bodyErrorResponses,
        },
      },
    },
    async (request) => {
      const result = await sessions.pairingCode(
        principalOf(request),
        request.params.id,
        request.body.phoneNumber,
      )
      return { code: result.code, expiresAt: iso(result.expiresAt) }
    },
  )

  app.get(
    '/sessions/:id/me',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'getSessionMe',
        summary: 'The linked account and device',
        params: s.sessionIdParam,
        response: { 200: s.meView.describe('The linked account and device'), ...errors },
      },
    },
    async (request) => sessions.me(principalOf(request), request.params.id),
  )
}
