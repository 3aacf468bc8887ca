import { z } from 'zod'
import { mediaSchema } from '../events/event-schemas.ts'
import { MESSAGE_STATUSES, MESSAGE_TYPES } from '../messages/message.types.ts'
import { isoTime } from './schemas.ts'

/*
 * What the messaging routes answer (messages, chats, contacts, groups), as zod schemas:
 * the response serializer sends exactly these fields, and the OpenAPI document publishes
 * them as components. The views in views-messaging.ts are typed against them.
 */

const lid = z.string().nullable().describe('LID (…@lid), when known')

/** Path parameters shared by the messaging routes. */
export const messageIdParam = z
  .string()
  .min(1)
  .max(100)
  .describe('wagate message id (msg_…), or WhatsApp’s id of the message')
export const chatIdParam = z
  .string()
  .min(3)
  .max(100)
  .describe('phone number, user JID (…@s.whatsapp.net), LID (…@lid) or group JID (…@g.us)')
export const contactIdParam = z
  .string()
  .min(3)
  .max(100)
  .describe('phone number, user JID (…@s.whatsapp.net) or LID (…@lid)')

export const media = mediaSchema
  .extend({
    fileName: mediaSchema.shape.fileName.describe('the file name, when the sender gave one'),
    size: mediaSchema.shape.size.describe('bytes'),
    seconds: mediaSchema.shape.seconds.describe('audio and video: the duration'),
  })
  .meta({ id: 'Media', description: 'The file of a media message.' })

/**
 * Type-specific content. Loose on purpose: the known fields are listed, and anything
 * stored beside them is still sent rather than dropped by the serializer.
 */
const messageDetails = z
  .looseObject({
    latitude: z.number().optional().describe('location'),
    longitude: z.number().optional().describe('location'),
    name: z.string().nullable().optional().describe('location: the place’s name; poll: the question'),
    address: z.string().nullable().optional().describe('location'),
    contacts: z
      .array(z.object({ displayName: z.string(), vcard: z.string() }))
      .optional()
      .describe('contact: the shared contact cards'),
    options: z
      .array(z.string())
      .optional()
      .describe(
        'poll: its options; poll_vote: the options the voter chose (details are null if the vote could not be read)',
      ),
    selectableCount: z
      .number()
      .int()
      .optional()
      .describe('poll: how many options a voter may choose (0: any)'),
    emoji: z.string().optional().describe('reaction: the emoji; empty when the reaction was removed'),
    contentType: z.string().optional().describe('unknown: WhatsApp’s name for the content'),
    edited: z.boolean().optional().describe('edited through this API'),
    deleted: z.boolean().optional().describe('deleted for everyone through this API'),
    forwarded: z.boolean().optional().describe('a copy forwarded through this API'),
  })
  .nullable()
  .describe('type-specific content: which fields appear depends on `type`; null when there is none')

export const message = z
  .object({
    id: z.string().describe('wagate message id (msg_…)'),
    waId: z.string().describe('WhatsApp’s id of the message'),
    chatId: z
      .string()
      .describe(
        'the chat: user JID (…@s.whatsapp.net), group JID (…@g.us), or LID when WhatsApp hid the number',
      ),
    chatLid: lid.describe('a 1:1 chat’s LID, when known; null for groups'),
    fromMe: z.boolean().describe('sent by this session, through the API or from another of its devices'),
    sender: z
      .object({
        jid: z.string().nullable().describe('the author’s user JID (in groups: the member), when known'),
        lid,
        pushName: z.string().nullable().describe('the name the author chose; null for own messages'),
      })
      .describe('who wrote it'),
    timestamp: isoTime.describe('when it was sent (own messages: when the API accepted it)'),
    type: z
      .enum(MESSAGE_TYPES)
      .describe('edit, delete, reaction and poll_vote are about the message in targetId'),
    text: z.string().nullable().describe('the text, a caption, a poll’s question or an edit’s new text'),
    media: media.nullable(),
    quotedId: z.string().nullable().describe('WhatsApp’s id of the message this one replies to'),
    mentions: z.array(z.string()).describe('JIDs of the people @mentioned'),
    targetId: z
      .string()
      .nullable()
      .describe('WhatsApp’s id of the message a reaction, edit, delete or poll vote is about'),
    details: messageDetails,
    status: z
      .enum(MESSAGE_STATUSES)
      .nullable()
      .describe(
        'own messages: pending → sent → delivered → read (→ played), or failed; null for received ones',
      ),
    failureReason: z.string().nullable().describe('why sending failed'),
    sendAfter: isoTime.nullable().describe('while queued: when it goes out at the earliest'),
  })
  .meta({ id: 'Message', description: 'A message, received or sent, with its delivery status.' })

/** What a send or forward answers: the message is queued, paced, and reported by events. */
export const acceptedMessage = z
  .object({
    id: z.string().describe('wagate message id (msg_…): GET …/messages/{id} follows it'),
    waId: z.string().describe('the id WhatsApp will know it by'),
    status: z.literal('pending'),
    sendAfter: isoTime.describe('when it goes out at the earliest (pacing)'),
  })
  .meta({ id: 'AcceptedMessage', description: 'Accepted for the paced outbound queue.' })

export const chat = z
  .object({
    id: z
      .string()
      .describe('user JID (…@s.whatsapp.net), group JID (…@g.us), or LID when WhatsApp hid the number'),
    lid: lid.describe('a 1:1 chat’s LID, when known'),
    name: z.string().nullable(),
    lastMessageAt: isoTime.nullable().describe('when the newest message was sent'),
    lastMessageId: z.string().nullable().describe('wagate id (msg_…) of the newest message'),
    unreadCount: z.number().int(),
    archived: z.boolean(),
    pinned: z.boolean(),
    mutedUntil: z
      .string()
      .nullable()
      .describe(
        'ISO 8601; null: not muted. Muted until unmuted reads +275760-09-13T00:00:00.000Z, the latest time there is',
      ),
  })
  .meta({ id: 'Chat', description: 'A chat as the session sees it: 1:1 or a group.' })

export const contact = z
  .object({
    id: z.string().describe('user JID (…@s.whatsapp.net), or LID when WhatsApp hid the number'),
    lid,
    phone: z.string().nullable().describe('digits with country code, when known'),
    name: z.string().nullable().describe('the name in the phone’s address book'),
    pushName: z.string().nullable().describe('the name they chose'),
    verifiedName: z.string().nullable().describe('a business’s verified name'),
    isBusiness: z.boolean(),
    updatedAt: isoTime.describe('when wagate last learnt something about them'),
  })
  .meta({
    id: 'Contact',
    description: 'Someone the session knows: from its address book, history or messages.',
  })

const participantRole = z.enum(['member', 'admin', 'superadmin']).describe('superadmin: the creator')

export const contactDetail = contact
  .extend({
    chat: chat.nullable().describe('the 1:1 chat with them, if there is one'),
    groups: z
      .array(
        z.object({
          jid: z.string().describe('group JID (…@g.us)'),
          subject: z.string(),
          role: participantRole,
          nameInGroup: z.string().nullable().describe('the name they used in this group, when seen'),
        }),
      )
      .describe('the groups they share with the session'),
  })
  .meta({
    id: 'ContactDetail',
    description: 'A contact with their chat and the groups they share with the session.',
  })

export const groupParticipant = z
  .object({
    jid: z.string().describe('as the group addresses them: user JID, or LID in LID-addressed groups'),
    lid,
    phone: z.string().nullable().describe('digits with country code, when known'),
    role: participantRole,
    name: z.string().nullable().describe('the name they used in this group, when seen'),
  })
  .meta({ id: 'GroupParticipant' })

export const group = z
  .object({
    id: z.string().describe('group JID (…@g.us)'),
    subject: z.string(),
    description: z.string().nullable(),
    owner: z.string().nullable().describe('JID of the creator, when WhatsApp says'),
    createdAt: isoTime.nullable().describe('when WhatsApp says the group was created'),
    announce: z.boolean().describe('only admins send messages'),
    restrict: z.boolean().describe('only admins edit the group info'),
    participants: z.array(groupParticipant),
    updatedAt: isoTime.describe('when wagate last stored what WhatsApp says of it'),
  })
  .meta({ id: 'Group', description: 'A group the session is in, as last seen.' })

export const participantsResult = z.object({
  group: group.describe('the group after the change'),
  results: z.array(
    z.object({
      jid: z.string().describe('the person, by user JID when WhatsApp gives the number'),
      status: z
        .string()
        .describe(
          'WhatsApp’s code for this person: "200" done; otherwise why not, e.g. "409" already a member, "404" not a member, "403" their privacy settings want an invite',
        ),
    }),
  ),
})

export const groupInvite = z
  .object({
    code: z.string(),
    link: z.string().describe('https://chat.whatsapp.com/{code}'),
  })
  .meta({ id: 'GroupInvite' })

export const numbersCheck = z.object({
  results: z.array(
    z.object({
      input: z.string().describe('the number as given'),
      jid: z.string().describe('its user JID'),
      exists: z.boolean().describe('whether the number is on WhatsApp'),
    }),
  ),
})

/** A list page with a cursor and the count over all pages. */
export const listPage = <Item extends z.ZodType>(item: Item) =>
  z.object({
    items: z.array(item),
    nextCursor: z.string().nullable().describe('pass as `cursor` for the next page; null on the last'),
    total: z.number().int().describe('how many match, over all pages'),
  })

/** A chat's messages, newest first, with cursors both ways. */
export const timelinePage = z.object({
  items: z.array(message),
  nextCursor: z.string().nullable().describe('older messages: pass as `before`; null at the oldest'),
  previousCursor: z.string().nullable().describe('newer messages: pass as `after`; null at the newest'),
})
