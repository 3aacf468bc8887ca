import { z } from 'zod'

/**
 * The sandbox control API's request and response schemas. The routes (control-api.ts)
 * validate and serialize with them; the typed client (control-client.ts) shares the
 * inferred types, so both sides change together.
 */

// ---- building blocks ----------------------------------------------------------------------

/** Digits with an optional `+`, spaces and dashes; normalized to 6–15 bare digits. */
export const phoneNumberSchema = z
  .string()
  .regex(/^\+?[\d\s-]+$/, 'must be digits, optionally with a leading +, spaces and dashes')
  .transform((value) => value.replace(/\D/g, ''))
  .refine((digits) => digits.length >= 6 && digits.length <= 15, 'must have 6 to 15 digits')

/** A group JID (`120363…@g.us`) or its bare id; normalized to the JID. */
export const groupJidSchema = z
  .string()
  .regex(/^\d+(-\d+)?(@g\.us)?$/, 'must be a group JID such as 120363000000000000@g.us')
  .transform((value) => (value.endsWith('@g.us') ? value : `${value}@g.us`))

const USER_JID = /^\d+(:\d+)?@(s\.whatsapp\.net|lid)$/

/** Where a simulated person sends: an account (phone number or user JID) or a group JID. */
export const chatAddressSchema = z.string().transform((value, ctx) => {
  if (/@g\.us$/.test(value)) {
    const group = groupJidSchema.safeParse(value)
    if (group.success) return group.data
  } else if (value.includes('@')) {
    if (USER_JID.test(value)) return value
  } else {
    const phone = phoneNumberSchema.safeParse(value)
    if (phone.success) return phone.data
  }
  ctx.addIssue({ code: 'custom', message: 'must be a phone number (6–15 digits), a user JID or a group JID' })
  return z.NEVER
})

const pushNameSchema = z.string().trim().min(1).max(100)
const addressingSchema = z.enum(['lid', 'pn'])
const messageIdSchema = z.string().min(1).max(128)
const delayMsSchema = z.number().int().min(0).max(600_000).nullable()

// ---- requests -------------------------------------------------------------------------------

export const phoneNumberParams = z.strictObject({ phoneNumber: phoneNumberSchema })
export const groupParams = z.strictObject({ jid: groupJidSchema })

export const createAccountBody = z.strictObject({
  phoneNumber: phoneNumberSchema.optional(),
  pushName: pushNameSchema.optional(),
})

export const createContactBody = z.strictObject({
  phoneNumber: phoneNumberSchema.optional(),
  pushName: pushNameSchema.optional(),
  addressing: addressingSchema.optional(),
})

export const updateContactBody = z.strictObject({
  online: z.boolean().optional(),
  pushName: pushNameSchema.optional(),
  addressing: addressingSchema.optional(),
})

export const createGroupBody = z.strictObject({
  subject: z.string().trim().min(1).max(100),
  creator: phoneNumberSchema,
  participants: z.array(phoneNumberSchema).max(1024),
  /** the name a member goes by in this group, by phone number */
  names: z.record(z.string().max(32), z.string().trim().min(1).max(25)).optional(),
})

/** A simulated member changes a group (what a linked client does through the group iqs). */
export const updateGroupBody = z
  .strictObject({
    /** the member making the change; settings need an admin, as do info changes in a locked group */
    by: phoneNumberSchema,
    subject: z.string().trim().min(1).max(100).optional(),
    /** an empty description deletes it */
    description: z.string().max(2048).optional(),
    announce: z.boolean().optional().describe('only admins send'),
    restrict: z.boolean().optional().describe('only admins edit the group info'),
  })
  .refine(
    (body) => ['subject', 'description', 'announce', 'restrict'].some((f) => f in body),
    'give at least one of subject, description, announce, restrict',
  )

export const groupParticipantsBody = z.strictObject({
  /** an admin of the group (anyone may remove themselves: that is leaving) */
  by: phoneNumberSchema,
  action: z.enum(['add', 'remove', 'promote', 'demote']),
  participants: z.array(phoneNumberSchema).min(1).max(256),
})

/** A simulated person calls an account; the account's linked devices ring. */
export const callBody = z.strictObject({
  to: phoneNumberSchema,
  video: z.boolean().default(false),
  /** the caller gives up after this long (a missed call); omit to leave it ringing */
  ringMs: z.number().int().min(0).max(120_000).optional(),
})

/** Where a chat is named in a path: a phone number, user JID, LID or group JID. */
export const accountChatParams = z.strictObject({
  phoneNumber: phoneNumberSchema,
  chat: z
    .string()
    .regex(
      /^(\+?[\d\s-]+|\d+(:\d+)?@(s\.whatsapp\.net|lid)|\d+(-\d+)?@g\.us)$/,
      'must be a phone number, a user JID, a LID or a group JID',
    )
    .transform((value) => (value.includes('@') ? value : `${value.replace(/\D/g, '')}@s.whatsapp.net`)),
})

/** The account's own phone changes a chat; its linked devices sync the change (app state). */
export const chatStateBody = z
  .strictObject({
    archived: z.boolean().optional(),
    pinned: z.boolean().optional(),
    /** epoch milliseconds the mute ends, -1 for ever, null to unmute */
    mutedUntil: z.number().int().min(-1).nullable().optional(),
    /** true marks the chat read, false marks it unread */
    read: z.boolean().optional(),
  })
  .refine(
    (body) => Object.values(body).some((v) => v !== undefined),
    'give at least one of archived, pinned, mutedUntil, read',
  )

export const addressBookParams = z.strictObject({
  phoneNumber: phoneNumberSchema,
  contactNumber: phoneNumberSchema,
})

/** The account's phone saves a person in its address book under this name. */
export const addressBookBody = z.strictObject({
  fullName: z.string().trim().min(1).max(100),
  firstName: z.string().trim().min(1).max(100).optional(),
})

export const scanBody = z.strictObject({
  qr: z.string().min(1).max(4096),
  phoneNumber: phoneNumberSchema.optional(),
})

export const pairingCodeBody = z.strictObject({
  phoneNumber: phoneNumberSchema,
  code: z.string().min(1).max(32),
})

/** 16 MiB of media as base64. */
export const MAX_MEDIA_BASE64 = Math.ceil((16 * 1024 * 1024) / 3) * 4

/** What a simulated person can send; exactly one per message (see `sendMessageBody`). */
const contentFields = {
  text: z.string().min(1).max(65_536),
  location: z.strictObject({
    latitude: z.number().min(-90).max(90),
    longitude: z.number().min(-180).max(180),
    name: z.string().max(256).optional(),
    address: z.string().max(1024).optional(),
  }),
  contact: z.strictObject({ displayName: z.string().min(1).max(256), vcard: z.string().min(1).max(65_536) }),
  reaction: z.strictObject({ messageId: messageIdSchema, emoji: z.string().max(32) }),
  poll: z.strictObject({
    name: z.string().min(1).max(256),
    options: z.array(z.string().min(1).max(100)).min(2).max(12),
    selectableCount: z.number().int().min(0).max(12).optional(),
  }),
  pollVote: z.strictObject({ pollId: messageIdSchema, options: z.array(z.string().min(1)).max(12) }),
  edit: z.strictObject({ messageId: messageIdSchema, text: z.string().min(1).max(65_536) }),
  delete: z.strictObject({ messageId: messageIdSchema }),
  media: z.strictObject({
    kind: z.enum(['image', 'video', 'audio', 'document', 'sticker']),
    data: z
      .string()
      .min(1)
      .max(MAX_MEDIA_BASE64)
      .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64 without a data: prefix'),
    mimetype: z.string().regex(/^[\w.+-]+\/[\w.+-]+$/, 'a MIME type such as image/jpeg'),
    caption: z.string().max(4096).optional(),
    fileName: z.string().min(1).max(255).optional(),
    ptt: z.boolean().optional(),
    seconds: z.number().int().min(0).max(86_400).optional(),
  }),
}

export const CONTENT_FIELDS = Object.keys(contentFields) as (keyof typeof contentFields)[]

export const sendMessageBody = z
  .strictObject({
    from: phoneNumberSchema,
    to: chatAddressSchema,
    text: contentFields.text.optional(),
    location: contentFields.location.optional(),
    contact: contentFields.contact.optional(),
    reaction: contentFields.reaction.optional(),
    poll: contentFields.poll.optional(),
    pollVote: contentFields.pollVote.optional(),
    edit: contentFields.edit.optional(),
    delete: contentFields.delete.optional(),
    media: contentFields.media.optional(),
    replyTo: messageIdSchema.optional(),
    pushName: pushNameSchema.optional(),
  })
  .superRefine((body, ctx) => {
    const given = CONTENT_FIELDS.filter((field) => body[field] !== undefined)
    if (given.length === 1) return
    ctx.addIssue({
      code: 'custom',
      message:
        `exactly one content field is required (one of ${CONTENT_FIELDS.join(', ')}); ` +
        (given.length ? `got ${given.join(' and ')}` : 'got none'),
    })
  })

export const receiptBody = z.strictObject({
  from: phoneNumberSchema,
  to: phoneNumberSchema,
  messageIds: z.array(messageIdSchema).min(1).max(1000),
  type: z.enum(['delivery', 'read', 'played']),
  group: groupJidSchema.optional(),
})

export const presenceBody = z
  .strictObject({
    from: phoneNumberSchema,
    to: phoneNumberSchema,
    state: z.enum(['available', 'unavailable', 'composing', 'recording', 'paused']),
    group: groupJidSchema.optional(),
  })
  .refine((body) => !body.group || !['available', 'unavailable'].includes(body.state), {
    message: 'group applies only to the chat states composing, recording and paused',
    path: ['group'],
  })

/** Mirrors `SandboxFault` (faults.ts); see there what each kind reproduces. */
export const faultBody = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.enum(['drop', 'silence', 'conflict', 'logout', 'restart-required']),
    phoneNumber: phoneNumberSchema,
  }),
  z.strictObject({
    kind: z.literal('slow'),
    phoneNumber: phoneNumberSchema,
    delayMs: z.number().int().min(0).max(600_000),
  }),
  z.strictObject({
    kind: z.literal('refuse-upgrade'),
    status: z.number().int().min(400).max(599).nullable(),
  }),
])

export const settingsBody = z.strictObject({
  receipts: z.strictObject({ deliveryDelayMs: delayMsSchema, readDelayMs: delayMsSchema }),
  /** what a newly linked device gets as its first history sync */
  history: z
    .strictObject({
      chats: z.number().int().min(0).max(1000),
      messagesPerChat: z.number().int().min(0).max(1000),
    })
    .optional(),
})

export const settingsView = z.object({
  receipts: z.object({ deliveryDelayMs: delayMsSchema, readDelayMs: delayMsSchema }),
  history: z.object({ chats: z.number(), messagesPerChat: z.number() }),
})

// ---- responses ------------------------------------------------------------------------------

export const infoView = z.object({
  websocketUrl: z.string(),
  /** the Noise root public key clients must trust, base64 */
  noiseRootPublicKey: z.string(),
  seed: z.number(),
  accounts: z.number(),
  contacts: z.number(),
  groups: z.number(),
})

export const accountView = z.object({
  phoneNumber: z.string(),
  jid: z.string(),
  lid: z.string(),
  lidJid: z.string(),
  pushName: z.string(),
  linkedDevices: z.array(
    z.object({
      deviceId: z.number(),
      /** seconds since the epoch */
      linkedAt: z.number(),
      connected: z.boolean(),
    }),
  ),
})

export const contactView = z.object({
  phoneNumber: z.string(),
  jid: z.string(),
  lid: z.string(),
  lidJid: z.string(),
  pushName: z.string(),
  online: z.boolean(),
  addressing: addressingSchema,
})

export const groupView = z.object({
  jid: z.string(),
  subject: z.string(),
  creator: z.string(),
  createdAt: z.number(),
  addressing: addressingSchema,
  participants: z.array(
    z.object({
      phoneNumber: z.string(),
      lid: z.string(),
      role: z.enum(['member', 'admin', 'superadmin']),
      name: z.string().optional(),
    }),
  ),
})

export const inboxMessageView = z.object({
  id: z.string(),
  /** the sender's device JID */
  from: z.string(),
  /** the receiving person's phone number, or the group JID */
  to: z.string(),
  chat: z.string(),
  timestamp: z.number(),
  /** the first content key of the message, e.g. `conversation` */
  kind: z.string(),
  text: z.string().nullable(),
  /** the decrypted `proto.Message` as JSON (bytes base64, enums by name) */
  message: z.record(z.string(), z.unknown()),
})

export const activityView = z.object({
  /** milliseconds since the epoch */
  at: z.number(),
  kind: z.enum(['receipt', 'chatstate', 'presence']),
  value: z.string(),
  messageIds: z.array(z.string()).optional(),
  to: z.string().optional(),
})

export const linkedView = z.object({ phoneNumber: z.string(), deviceId: z.number() })
export const participantsResultView = z.object({
  group: groupView,
  /** per person: 200 done, 409 already a member, 404 not a member, 406 the creator */
  results: z.array(z.object({ phoneNumber: z.string(), code: z.number() })),
})
export const callView = z.object({ callId: z.string() })
/** The app state collections a change went to, with their new versions. */
export const appStateView = z.object({
  applied: z.array(z.object({ collection: z.string(), version: z.number() })),
})
export const sentView = z.object({ id: z.string(), timestamp: z.number() })
export const faultResultView = z.object({ affectedConnections: z.number() })

export const accountListView = z.object({ accounts: z.array(accountView) })
export const contactListView = z.object({ contacts: z.array(contactView) })
export const groupListView = z.object({ groups: z.array(groupView) })
export const inboxView = z.object({ messages: z.array(inboxMessageView) })
export const activityListView = z.object({ activity: z.array(activityView) })

// ---- shared types ---------------------------------------------------------------------------

export type CreateAccountInput = z.input<typeof createAccountBody>
export type CreateContactInput = z.input<typeof createContactBody>
export type UpdateContactInput = z.input<typeof updateContactBody>
export type CreateGroupInput = z.input<typeof createGroupBody>
export type UpdateGroupInput = z.input<typeof updateGroupBody>
export type GroupParticipantsInput = z.input<typeof groupParticipantsBody>
export type CallInput = z.input<typeof callBody>
export type ChatStateInput = z.input<typeof chatStateBody>
export type AddressBookInput = z.input<typeof addressBookBody>
export type ScanInput = z.input<typeof scanBody>
export type PairingCodeInput = z.input<typeof pairingCodeBody>
export type SendMessageInput = z.input<typeof sendMessageBody>
export type ReceiptInput = z.input<typeof receiptBody>
export type PresenceInput = z.input<typeof presenceBody>
export type FaultInput = z.input<typeof faultBody>
export type Settings = z.output<typeof settingsView>
export type SettingsUpdate = z.input<typeof settingsBody>

export type SandboxInfo = z.output<typeof infoView>
export type Account = z.output<typeof accountView>
export type Contact = z.output<typeof contactView>
export type Group = z.output<typeof groupView>
export type InboxMessage = z.output<typeof inboxMessageView>
export type Activity = z.output<typeof activityView>
export type Linked = z.output<typeof linkedView>
export type Sent = z.output<typeof sentView>
export type FaultResult = z.output<typeof faultResultView>
export type ParticipantsResult = z.output<typeof participantsResultView>
export type CallStarted = z.output<typeof callView>
export type AppStateApplied = z.output<typeof appStateView>

export type { ControlErrorBody } from './control-errors.ts'
