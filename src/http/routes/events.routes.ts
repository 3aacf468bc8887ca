import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { Principal } from '../../accounts/api-key.types.ts'
import { AppError, invalidRequest } from '../../domain/errors.ts'
import { type DomainEvent, fromStored, wireEvent } from '../../events/catalogue.ts'
import { type EventFilter, matchesType, unknownEventPatterns } from '../../events/event-filter.ts'
import { EVENT_TYPES, eventDescription, eventEnvelopeSchema } from '../../events/event-schemas.ts'
import {
  type EventStreamService,
  LAST_EVENT_ID,
  type StreamEndCause,
} from '../../realtime/event-stream.service.ts'
import type { SessionsService } from '../../sessions/sessions.service.ts'
import type { EventsRepository } from '../../store/events.repository.ts'
import { allow, principalOf } from '../auth.ts'
import * as s from '../schemas.ts'

const tags = ['events']
const errors = s.errorResponses(400)
const HEARTBEAT_MS = 20_000
/** A client this far behind is dropped rather than allowed to grow our memory. */
const MAX_BUFFERED_BYTES = 1024 * 1024
export const SLOW_CONSUMER_CLOSE = 4008
/** The stream's key was revoked, or expired, while it was open. */
export const CREDENTIALS_CLOSE = 4001
/** A newer stream opened with the same ticket replaced this one (the client reconnected). */
export const REPLACED_CLOSE = 4002
/** The gateway is shutting down: reconnect (and resume) once it is back. */
export const GOING_AWAY_CLOSE = 1001

const list = z
  .string()
  .max(1000)
  .optional()
  .transform((value) =>
    value
      ? value
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean)
      : [],
  )

/** Event type patterns; one that names no type of the catalogue is refused, not matched to nothing. */
const typePatterns = list
  .superRefine((patterns, ctx) => {
    const unknown = unknownEventPatterns(patterns)
    if (unknown.length) {
      ctx.addIssue({
        code: 'custom',
        message: `no event type matches ${unknown.join(', ')} (see GET /api/v1/events/types)`,
      })
    }
  })
  .describe('comma-separated event types; `message.*` and `*` are wildcards')

/** What an event id looks like: a resume cursor that is not one is a bad request, not an expired cursor. */
const EVENT_ID = /^evt_\w+$/

const streamQuery = z.object({
  types: typePatterns,
  sessions: list.describe('comma-separated sessions, by id or name'),
  after: z
    .string()
    .max(100)
    .regex(EVENT_ID, 'an event id (evt_…)')
    .optional()
    .describe('an event id: replay what came after it first'),
  ticket: z
    .string()
    .max(100)
    .optional()
    .describe(
      'a short-lived ticket from POST /api/v1/events/ticket, in place of the key: for browsers, whose ' +
        'EventSource and WebSocket cannot send headers',
    ),
})

/**
 * Declared for the OpenAPI document, and checked here only as a string: the SSE handler checks
 * its format itself (`lastEventId`, with its own message), and a WebSocket ignores it.
 */
const streamHeaders = z.looseObject({
  'last-event-id': z
    .string()
    .optional()
    .meta({
      description:
        'Server-Sent Events only: the last event id a reconnecting EventSource saw, in the format of `after`; ' +
        'the stream resumes after it, and it wins over `after`',
      pattern: EVENT_ID.source,
      maxLength: 100,
    }),
})

const eventTypesView = z.object({
  items: z.array(
    z.object({
      type: z.enum(EVENT_TYPES),
      description: z.string(),
      schema: z.string().describe('its OpenAPI component'),
    }),
  ),
})

function filterOf(query: { types: string[]; sessions: string[] }): EventFilter {
  return { types: query.types, sessionIds: query.sessions.length ? query.sessions : null }
}

/**
 * An event's JSON, made once however many streams it goes to: the bus hands every
 * subscriber the same object, and with a hundred clients serializing per socket showed.
 */
const wireJson = new WeakMap<DomainEvent, string>()
function serialized(event: DomainEvent): string {
  let json = wireJson.get(event)
  if (json === undefined) {
    json = JSON.stringify(wireEvent(event))
    wireJson.set(event, json)
  }
  return json
}

export const eventsRoutes: FastifyPluginAsyncZod<{
  stream: EventStreamService
  events: EventsRepository
  sessions: SessionsService
}> = async (app, { stream, events, sessions }) => {
  /**
   * Sessions named in a filter, by id or name as every route takes them, as ids: one the
   * key may not see, or that does not exist, is an error rather than a filter matching nothing.
   */
  const sessionIdsOf = (principal: Principal, named: string[]) =>
    Promise.all(named.map(async (idOrName) => (await sessions.get(principal, idOrName)).id))

  app.get(
    '/events',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'listEvents',
        summary: 'Recent events, newest first',
        querystring: z.object({
          session: z.string().max(100).optional().describe('a session, by id or name'),
          types: typePatterns,
          since: z.iso.datetime({ offset: true }).optional().describe('events at or after this time'),
          until: z.iso.datetime({ offset: true }).optional().describe('events before this time'),
          limit: z.coerce.number().int().min(1).max(500).default(100),
          cursor: z.string().max(200).optional().describe("the previous page's nextCursor"),
        }),
        description: 'Each item is an `Event`: its `type` names the payload schema, `Event.<type>`.',
        response: {
          200: z
            .object({ items: z.array(eventEnvelopeSchema), nextCursor: z.string().nullable() })
            .describe('A page of events, newest first'),
          ...errors,
        },
      },
    },
    async (request) => {
      const principal = principalOf(request)
      const { session, types, since, until, limit, cursor } = request.query
      const [sessionId] = session ? await sessionIdsOf(principal, [session]) : []
      // The catalogue is closed, so patterns become the exact types they stand for: every
      // filter runs in the query, and a page is never short because of one applied after it.
      const selected = types.length
        ? EVENT_TYPES.filter((type) => types.some((pattern) => matchesType(pattern, type)))
        : undefined
      const page = await events.listPage(principal.organizationId, {
        ...(sessionId ? { sessionId } : {}),
        ...(principal.sessionIds ? { sessionIds: principal.sessionIds } : {}),
        ...(selected ? { types: selected } : {}),
        ...(since ? { since: Date.parse(since) } : {}),
        ...(until ? { until: Date.parse(until) } : {}),
        ...(cursor ? { cursor } : {}),
        limit,
      })
      return { items: page.items.map(fromStored).map(wireEvent), nextCursor: page.nextCursor }
    },
  )

  app.get(
    '/events/types',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'listEventTypes',
        summary: 'Every event type, with what it means and its payload schema',
        response: { 200: eventTypesView.describe('Every event type of the catalogue'), ...errors },
      },
    },
    async (request) => {
      principalOf(request)
      return {
        items: EVENT_TYPES.map((type) => ({
          type,
          description: eventDescription(type),
          schema: `#/components/schemas/Event.${type}`,
        })),
      }
    },
  )

  app.post(
    '/events/ticket',
    {
      config: allow('viewer'),
      schema: {
        tags,
        operationId: 'createStreamTicket',
        summary: 'A ticket to open the stream from a browser',
        description:
          'Pass it as `?ticket=` to `GET /events/stream`. It opens a stream within 60 s (never after the key expires), ' +
          'one at a time: the stream it opened (the same types and sessions) may be opened again with it — a reconnect, ' +
          'as EventSource does — while that is open and for 60 s after it ended, for 24 h at most; the newer stream ' +
          'replaces the older (WebSocket close 4002, SSE `event: replaced`). One ticket per client: streams that ' +
          'replace each other more than six times a minute void it (4001, SSE `event: error`).',
        response: {
          200: z
            .object({ ticket: z.string(), expiresAt: z.string() })
            .describe('The ticket, and when it stops opening streams'),
          ...errors,
        },
      },
    },
    async (request) => {
      const { ticket, expiresAt } = stream.issueTicket(principalOf(request))
      return { ticket, expiresAt: new Date(expiresAt).toISOString() }
    },
  )

  app.route({
    config: allow('viewer'),
    method: 'GET',
    url: '/events/stream',
    // A HEAD would start a stream it never reads (and, with a ticket, replace the one the ticket opened).
    exposeHeadRoute: false,
    schema: {
      tags,
      operationId: 'streamEvents',
      summary: 'Live events: a WebSocket, or Server-Sent Events for plain HTTP clients',
      querystring: streamQuery,
      headers: streamHeaders,
      description:
        'With `Upgrade: websocket`, a WebSocket (101): each text message is one `Event` (JSON). It is closed with ' +
        '4001 when the key is revoked or expires, or the ticket is voided (shared by two clients), 4002 when a newer ' +
        'stream opened with the same ticket replaced it, 4008 when the client reads too slowly, 1008 when the stream ' +
        'cannot open (an expired cursor, a foreign session), 1001 at shutdown. A malformed query is a 400 before the ' +
        'upgrade. Otherwise Server-Sent Events (200). A browser, which cannot send the key header, passes ' +
        '`?ticket=` from `POST /events/ticket` instead.',
      response: {
        200: {
          description:
            'Server-Sent Events: `id:` the event id, `event:` its type, `data:` the `Event` (JSON); a comment ' +
            'every 20 s. Ends with `event: error` (why) or `event: replaced` (a newer stream opened with the ticket: ' +
            'close the EventSource). A reconnecting EventSource resumes after its `Last-Event-ID`.',
          content: { 'text/event-stream': { schema: z.string() } },
        },
        ...s.errorResponses(400, 404),
      },
    },
    // Server-Sent Events for plain HTTP clients.
    handler: async (request, reply) => {
      const principal = principalOf(request)
      const asked = request.query as z.output<typeof streamQuery>
      const query = { ...asked, sessions: await sessionIdsOf(principal, asked.sessions) }
      // EventSource sends the last id it saw when it reconnects, to the URL it first opened:
      // that id is later than the URL's `after`, so it wins.
      const reconnectedAfter = lastEventId(request.headers['last-event-id'])
      const after = reconnectedAfter ?? query.after
      // A cursor that cannot be honoured gets the error envelope, before the stream begins:
      // an EventSource reconnects after a stream that ends, but not after a 400.
      const filter = filterOf(query)
      if (request.streamTicket) stream.checkTicket(request.streamTicket, filter)
      const cursor = after
        ? await stream.checkCursor(principal, after, reconnectedAfter ? LAST_EVENT_ID : undefined)
        : undefined
      reply.hijack()
      const raw = reply.raw
      // The server's connectionTimeout would cut a quiet stream; the heartbeat keeps proxies' idle timers going.
      request.raw.socket.setTimeout(0)
      // What the hooks set (CORS, for browsers' EventSource), then the stream's own.
      const hooked = Object.entries(reply.getHeaders()).filter(
        (header): header is [string, string | number | string[]] => header[1] !== undefined,
      )
      raw.writeHead(200, {
        ...Object.fromEntries(hooked),
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-request-id': request.id,
      })
      raw.write(': connected\n\n')
      const heartbeat = setInterval(() => raw.write(': heartbeat\n\n'), HEARTBEAT_MS)
      // `replaced`: a newer stream opened with this ticket; a client seeing it should close() its EventSource.
      const endWith = (message: string, cause?: StreamEndCause) => {
        clearInterval(heartbeat)
        if (raw.writableEnded) return
        const event = cause === 'replaced' ? 'replaced' : 'error'
        raw.end(`event: ${event}\ndata: ${JSON.stringify({ message })}\n\n`)
      }
      // Listened for before the subscription is awaited: a client gone meanwhile leaves nothing behind.
      let close: (() => void) | undefined
      let gone = false
      request.raw.on('close', () => {
        gone = true
        clearInterval(heartbeat)
        close?.()
      })
      const sink = (event: DomainEvent) => {
        raw.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${serialized(event)}\n\n`)
        if (raw.writableLength > MAX_BUFFERED_BYTES) {
          endWith('dropped: too slow; read faster or filter more')
          return false
        }
        return true
      }
      close = await stream
        .subscribe(principal, filter, sink, { after: cursor, end: endWith, ticket: request.streamTicket })
        .catch((error: Error) => {
          endWith(error.message)
          return undefined
        })
      if (gone) close?.()
    },
    wsHandler: async (socket, request) => {
      const principal = principalOf(request)
      const asked = request.query as z.output<typeof streamQuery>
      const heartbeat = setInterval(() => socket.ping(), HEARTBEAT_MS)
      let close: (() => void) | undefined
      socket.on('close', () => {
        clearInterval(heartbeat)
        close?.()
      })
      try {
        const query = { ...asked, sessions: await sessionIdsOf(principal, asked.sessions) }
        // Gone while its sessions were looked up: no stream to open, and none to replace.
        if (socket.readyState !== socket.OPEN) return
        const sink = (event: DomainEvent) => {
          if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
            socket.close(SLOW_CONSUMER_CLOSE, 'slow consumer: read faster or filter more')
            return false
          }
          socket.send(serialized(event))
          return true
        }
        close = await stream.subscribe(principal, filterOf(query), sink, {
          after: query.after,
          end: (reason, cause) => socket.close(closeCodes[cause], reason),
          ticket: request.streamTicket,
        })
        // Closed while the subscription was awaited: its close listener found nothing to end.
        if (socket.readyState !== socket.OPEN) close()
      } catch (error) {
        const goingAway = error instanceof AppError && error.code === 'unavailable'
        socket.close(goingAway ? GOING_AWAY_CLOSE : 1008, closeReason((error as Error).message))
      }
    },
  })
}

/** The WebSocket close code of each reason a stream is ended from our side. */
const closeCodes: Record<StreamEndCause, number> = {
  credentials: CREDENTIALS_CLOSE,
  replaced: REPLACED_CLOSE,
  shutdown: GOING_AWAY_CLOSE,
}

/** A WebSocket close reason may be 123 bytes at most: a longer message is cut at a word, and says so. */
function closeReason(message: string): string {
  if (Buffer.byteLength(message) <= 123) return message
  let cut = message.slice(0, 118)
  while (Buffer.byteLength(cut) > 118) cut = cut.slice(0, -1)
  const space = cut.lastIndexOf(' ')
  return `${space > 60 ? cut.slice(0, space) : cut}…`
}

/** A `Last-Event-ID` header as a resume cursor: an event id, or nothing. */
function lastEventId(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (!value) return undefined
  if (value.length > 100 || !EVENT_ID.test(value)) {
    throw invalidRequest('Last-Event-ID: not an event id (evt_…, at most 100 characters)', [
      { path: 'headers.last-event-id', message: 'an event id (evt_…)' },
    ])
  }
  return value
}
