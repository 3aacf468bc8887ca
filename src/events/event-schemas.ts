import { z } from 'zod'
import { SESSION_STATUSES, type StatusChange } from '../domain/session-status.ts'
import {
  MEDIA_TYPES,
  MESSAGE_STATUSES,
  MESSAGE_TYPES,
  type MessageStatus,
  type NormalizedMessage,
} from '../messages/message.types.ts'

/*
 * The payload (`data`) of every domain event type, as zod schemas: the catalogue's types
 * are inferred from them (catalogue.ts), the OpenAPI document publishes them, and tests
 * validate what the gateway emits against them. Times inside `data` are epoch ms.
 */

const epochMs = z.number().int().describe('epoch milliseconds')

/** Someone WhatsApp named: by phone JID when it told us the number, else by LID; both where known. */
export const personSchema = z.object({
  jid: z.string().describe('phone JID (…@s.whatsapp.net) when the number is known, else the LID'),
  lid: z.string().nullable().describe('LID (…@lid), when known'),
  phone: z.string().nullable().describe('digits with country code, when known'),
})

const statusChangeSchema = z.object({
  status: z.enum(SESSION_STATUSES),
  at: epochMs,
  reason: z.string().optional(),
})

export const mediaSchema = z.object({
  type: z.enum(MEDIA_TYPES),
  mimetype: z.string(),
  fileName: z.string().optional(),
  size: z.number().optional(),
  seconds: z.number().optional(),
  ptt: z.boolean().optional().describe('a voice note rather than an audio file'),
  mediaId: z.string().optional().describe('set once downloaded: GET …/media/{mediaId}'),
})

/** A message as events carry it: the normalized shape with wagate's id and outbound status. */
export const messageEventSchema = z.object({
  id: z.string().describe('wagate message id (msg_…)'),
  waId: z.string().describe("WhatsApp's message id"),
  chatJid: z.string(),
  chatLid: z.string().nullable(),
  fromMe: z.boolean(),
  senderJid: z.string().nullable(),
  senderLid: z.string().nullable(),
  pushName: z.string().nullable(),
  timestamp: epochMs,
  type: z.enum(MESSAGE_TYPES),
  text: z.string().nullable(),
  media: mediaSchema.nullable(),
  quotedId: z.string().nullable(),
  mentions: z.array(z.string()),
  targetId: z.string().nullable().describe('the message a reaction, edit, delete or vote is about'),
  details: z.record(z.string(), z.unknown()).nullable(),
  status: z.enum(MESSAGE_STATUSES).nullable(),
})

export const CHAT_FIELDS = ['name', 'archived', 'pinned', 'mutedUntil', 'unreadCount'] as const
export const CONTACT_FIELDS = ['name', 'pushName', 'verifiedName', 'lid', 'phone'] as const
export const GROUP_FIELDS = ['subject', 'description', 'announce', 'restrict'] as const
export const PRESENCES = ['available', 'unavailable', 'composing', 'recording', 'paused'] as const
export const GROUP_PARTICIPANT_ACTIONS = ['add', 'remove', 'promote', 'demote', 'modify'] as const

/** Every event type with its payload schema and what it means. The catalogue is closed. */
export const EVENT_SCHEMAS = {
  'session.status': z
    .object({
      status: z.enum(SESSION_STATUSES),
      statuses: z.array(statusChangeSchema).describe('recent changes, oldest first'),
      lastError: z.string().nullable(),
    })
    .describe("The session's status changed."),
  'session.qr': z
    .object({ value: z.string().describe('the QR text to render'), expiresAt: epochMs })
    .describe('A new QR to scan with the phone.'),
  'session.pairing_code': z
    .object({ code: z.string().describe('8 characters to type on the phone'), expiresAt: epochMs })
    .describe('A pairing code to type on the phone.'),
  'message.received': messageEventSchema.describe('Someone sent the session a message.'),
  'message.sent': messageEventSchema.describe(
    'The session sent a message (through the API, or from another of its devices).',
  ),
  'message.status': z
    .object({
      id: z.string(),
      waId: z.string(),
      chatJid: z.string(),
      status: z.enum(MESSAGE_STATUSES),
      reason: z.string().optional(),
    })
    .describe('A sent message was delivered, read, played or failed.'),
  'message.reaction': messageEventSchema.describe('Someone reacted to a message (empty emoji: removed).'),
  'message.edited': messageEventSchema.describe('A message was edited; targetId names it.'),
  'message.deleted': messageEventSchema.describe('A message was deleted for everyone; targetId names it.'),
  'poll.vote': messageEventSchema.describe('Someone voted in a poll; details.options are their choices.'),
  'presence.update': z
    .object({
      chatJid: z.string().describe('the chat (a group for typing in a group)'),
      participant: personSchema,
      presence: z
        .enum(PRESENCES)
        .describe('WhatsApp reports someone who stops typing as available, rarely as paused'),
      lastSeen: epochMs.nullable(),
    })
    .describe('Someone came online, went offline, or is typing or recording in a chat. Not stored.'),
  'chat.update': z
    .object({
      chatJid: z.string(),
      chatLid: z.string().nullable(),
      changed: z.array(z.enum(CHAT_FIELDS)).min(1).describe('the fields this change set'),
      name: z.string().nullable(),
      archived: z.boolean(),
      pinned: z.boolean(),
      mutedUntil: epochMs.nullable().describe('null: not muted'),
      unreadCount: z.number().int(),
    })
    .describe("A chat's stored state changed on WhatsApp (archived, pinned, muted, read, renamed)."),
  'contact.update': z
    .object({
      jid: z.string(),
      lid: z.string().nullable(),
      phone: z.string().nullable(),
      changed: z.array(z.enum(CONTACT_FIELDS)).min(1),
      name: z.string().nullable().describe("the name in the phone's address book"),
      pushName: z.string().nullable().describe('the name they chose'),
      verifiedName: z.string().nullable(),
    })
    .describe(
      "A contact's stored name, push name, verified name or LID ↔ phone pairing changed (or it was first stored).",
    ),
  'group.update': z
    .object({
      groupJid: z.string(),
      changed: z.array(z.enum(GROUP_FIELDS)).min(1),
      subject: z.string(),
      description: z.string().nullable(),
      announce: z.boolean().describe('only admins send'),
      restrict: z.boolean().describe('only admins edit the group info'),
      author: personSchema.nullable().describe('who made the change, when WhatsApp says'),
    })
    .describe("A group's subject, description or settings changed."),
  'group.participants': z
    .object({
      groupJid: z.string(),
      action: z.enum(GROUP_PARTICIPANT_ACTIONS).describe('modify: a member changed number'),
      participants: z.array(personSchema).min(1),
      author: personSchema.nullable(),
    })
    .describe('Members were added, removed (or left), promoted or demoted.'),
  'call.received': z
    .object({
      callId: z.string(),
      status: z
        .literal('offer')
        .describe('always offer: the call is recorded once, when it rings; its outcome is not'),
      from: personSchema,
      chatJid: z.string(),
      isVideo: z.boolean(),
      isGroup: z.boolean(),
      groupJid: z.string().nullable(),
      offline: z.boolean().describe('the offer arrived while the session was offline'),
      at: epochMs,
    })
    .describe('Someone called the session (it rings on the linked device; wagate cannot answer).'),
  'history.sync': z
    .object({
      syncType: z.string(),
      progress: z.number().nullable(),
      messages: z.number().int().describe('messages stored from this batch'),
      chats: z.number().int(),
      contacts: z.number().int(),
    })
    .describe('A batch of history was stored (on first link, or on demand); one event per batch.'),
} as const

type Schemas = typeof EVENT_SCHEMAS

/** Every event type, in catalogue order. */
export const EVENT_TYPES = Object.keys(EVENT_SCHEMAS) as (keyof Schemas)[]

/** The one-line description of each type. */
export const eventDescription = (type: keyof Schemas): string => EVENT_SCHEMAS[type].description ?? type

// The schemas and the domain's own types must describe the same shapes.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const sameShape = <T extends true>(): T | undefined => undefined
sameShape<
  Same<z.output<typeof messageEventSchema>, NormalizedMessage & { id: string; status: MessageStatus | null }>
>()
sameShape<Same<z.output<typeof statusChangeSchema>, StatusChange>>()

/** An event on the wire (GET /events, the stream): what `wireEvent` makes of a DomainEvent. */
export interface WireEvent {
  id: string
  type: keyof Schemas
  session: { id: string; name: string; metadata: Record<string, string> } | null
  organization: string
  /** ISO 8601 */
  timestamp: string
  data: unknown
}

const sessionRefSchema = z
  .object({ id: z.string(), name: z.string(), metadata: z.record(z.string(), z.string()) })
  .nullable()
  .describe('the session the event is about')

/** One envelope per type, published as the OpenAPI component `Event.<type>`. */
const envelopes = EVENT_TYPES.map((type) =>
  z
    .object({
      id: z.string().describe('evt_…, stable across the store, webhooks and the stream'),
      type: z.literal(type),
      session: sessionRefSchema,
      organization: z.string(),
      timestamp: z.iso.datetime().describe('when the event was recorded'),
      data: EVENT_SCHEMAS[type],
    })
    .meta({ id: `Event.${type}`, description: eventDescription(type) }),
)

/**
 * Any event, discriminated on `type`: the OpenAPI component `Event`. Typed loosely for
 * the routes that return it; the schema itself checks each type's payload.
 */
export const eventEnvelopeSchema = z
  .discriminatedUnion('type', envelopes as unknown as [(typeof envelopes)[number]])
  .meta({
    id: 'Event',
    description: 'A domain event. `type` says which; `data` is that type’s payload.',
    discriminator: {
      propertyName: 'type',
      mapping: Object.fromEntries(EVENT_TYPES.map((type) => [type, `#/components/schemas/Event.${type}`])),
    },
  }) as unknown as z.ZodType<WireEvent>
