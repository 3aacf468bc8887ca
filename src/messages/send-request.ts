import { z } from 'zod'

/** Limits per media type, in bytes, close to WhatsApp's own. */
export const MEDIA_LIMITS = {
  image: 16 * 1024 * 1024,
  video: 64 * 1024 * 1024,
  audio: 16 * 1024 * 1024,
  document: 100 * 1024 * 1024,
  sticker: 1024 * 1024,
} as const

/** MIME types WhatsApp accepts per media type (documents take anything). */
export const MEDIA_MIME_TYPES: Record<keyof typeof MEDIA_LIMITS, RegExp> = {
  image: /^image\/(jpeg|png|webp)$/,
  video: /^video\/(mp4|3gpp)$/,
  audio: /^audio\/(ogg|mpeg|mp4|aac|amr|opus|ogg; ?codecs=opus)$/,
  document: /^[\w.+-]+\/[\w.+-]+$/,
  sticker: /^image\/webp$/,
}

const recipient = z
  .string()
  .min(3)
  .max(100)
  .describe('phone number, user JID (…@s.whatsapp.net or …@c.us), LID or group JID')
const messageId = z.string().min(1).max(100)

/** Media given by URL or base64 (multipart uploads arrive as files and are turned into this). */
const mediaSource = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).optional(),
    base64: z.string().min(1).optional(),
    mimetype: z
      .string()
      .regex(/^[\w.+-]+\/[\w.+-]+(; ?[\w=-]+)?$/, 'a MIME type such as image/jpeg')
      .optional(),
    caption: z.string().max(4096).optional(),
    fileName: z.string().min(1).max(255).optional(),
  })
  .refine((m) => (m.url ? 1 : 0) + (m.base64 ? 1 : 0) === 1, 'give exactly one of url and base64')

const common = {
  to: recipient,
  /** quote this message (a wagate `msg_…` id or a WhatsApp id) */
  replyTo: messageId.optional(),
  /** people to @mention: phone numbers or JIDs */
  mentions: z.array(z.string().min(3).max(100)).max(256).optional(),
  /** accept even when the session is not ready; it is sent once it is */
  queue: z.boolean().optional(),
}

export const sendMessageBody = z.discriminatedUnion('type', [
  z.object({
    ...common,
    type: z.literal('text'),
    text: z.object({ body: z.string().min(1, 'empty text').max(65_536), previewUrl: z.boolean().optional() }),
  }),
  z.object({ ...common, type: z.literal('image'), image: mediaSource }),
  z.object({ ...common, type: z.literal('video'), video: mediaSource }),
  z.object({
    ...common,
    type: z.literal('audio'),
    audio: mediaSource.and(z.object({ voice: z.boolean().optional() })),
  }),
  z.object({ ...common, type: z.literal('document'), document: mediaSource }),
  z.object({ ...common, type: z.literal('sticker'), sticker: mediaSource }),
  z.object({
    ...common,
    type: z.literal('location'),
    location: z.object({
      latitude: z.number().min(-90).max(90),
      longitude: z.number().min(-180).max(180),
      name: z.string().max(256).optional(),
      address: z.string().max(1024).optional(),
    }),
  }),
  z.object({
    ...common,
    type: z.literal('contact'),
    contact: z.object({
      contacts: z
        .array(
          z.object({
            displayName: z.string().min(1).max(256),
            vcard: z
              .string()
              .regex(/^BEGIN:VCARD/, 'a vCard (BEGIN:VCARD …)')
              .max(65_536),
          }),
        )
        .min(1)
        .max(20),
    }),
  }),
  z.object({
    ...common,
    type: z.literal('poll'),
    poll: z.object({
      name: z.string().min(1).max(256),
      options: z.array(z.string().min(1).max(100)).min(2).max(12),
      selectableCount: z.number().int().min(0).max(12).default(1),
    }),
  }),
  z.object({
    ...common,
    type: z.literal('reaction'),
    reaction: z.object({ messageId, emoji: z.string().max(32).describe('empty removes the reaction') }),
  }),
])

export type SendMessageBody = z.output<typeof sendMessageBody>
export type MediaKind = keyof typeof MEDIA_LIMITS
