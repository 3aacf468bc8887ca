import { z } from 'zod'
import { eventPattern } from '../events/event-filter.ts'

export const WEBHOOK_RETRY_POLICIES = ['constant', 'linear', 'exponential'] as const

const headerName = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'letters, digits and hyphens, at most 64')
/**
 * Printable ASCII, spaces and tabs: a line break would end the header and start another,
 * and the HTTP client refuses any other character — every delivery would fail.
 */
const headerValue = z
  .string()
  .max(1024)
  .regex(/^[\t\x20-\x7e]*$/, 'printable ASCII only: no line breaks or other characters')

/**
 * Headers a webhook's requests carry beside ours, of organization and session webhooks
 * alike; names are case-insensitive, so each may be given once. Which names are ours is
 * checked on save (`isReservedHeader`).
 */
export const customHeadersSchema = z
  .array(z.object({ name: headerName, value: headerValue }))
  .max(20)
  .superRefine((headers, context) => {
    const seen = new Set<string>()
    headers.forEach((header, index) => {
      const name = header.name.toLowerCase()
      if (seen.has(name)) {
        context.addIssue({
          code: 'custom',
          path: [index, 'name'],
          message: `${header.name} is given twice (header names are case-insensitive)`,
        })
      }
      seen.add(name)
    })
  })

/**
 * A webhook's URL, of organization and session webhooks alike: http(s), at most 2,048
 * characters, and no user or password in it — the HTTP client would not send them.
 */
export const webhookUrlSchema = z
  .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
  .max(2048, 'at most 2048 characters')
  // Runs whatever the checks before found: a URL that does not parse is theirs to report.
  .refine((url) => {
    if (!URL.canParse(url)) return true
    const { username, password } = new URL(url)
    return username === '' && password === ''
  }, 'a user or password in the URL is not sent: put credentials in customHeaders (Authorization)')

/**
 * A session's own webhook. The shape checks are here; what needs I/O or the webhooks'
 * rules (the SSRF guard, reserved headers) is checked by the sessions service on save,
 * the same checks organization webhooks get.
 */
export const sessionWebhookSchema = z.object({
  url: webhookUrlSchema,
  events: z.array(eventPattern).min(1, 'at least one event type; * for all').max(64).default(['*']),
  hmac: z.object({ key: z.string().min(8, 'at least 8 characters').max(256) }).optional(),
  customHeaders: customHeadersSchema.default([]),
  retries: z
    .object({
      policy: z.enum(WEBHOOK_RETRY_POLICIES).default('exponential'),
      delaySeconds: z.number().int().min(1).max(3600).default(2),
      attempts: z.number().int().min(1).max(50).default(15),
    })
    .default({ policy: 'exponential', delaySeconds: 2, attempts: 15 }),
})

/** A session's configuration, in the shape of the WAHA-style seed; every field optional. */
export const sessionConfigSchema = z.object({
  metadata: z
    .record(z.string().max(100), z.string().max(1000))
    .refine((m) => Object.keys(m).length <= 50, 'at most 50 keys')
    .default({}),
  proxy: z
    .object({
      server: z
        .string()
        .regex(
          /^((https?|socks[45]?):\/\/)?[A-Za-z0-9.-]+:\d{1,5}$/,
          'host:port, optionally with http://, https:// or socks5://',
        ),
      username: z.string().max(256).optional(),
      password: z.string().max(256).optional(),
    })
    .optional(),
  client: z
    .object({
      deviceName: z.string().min(1).max(50).optional(),
      browserName: z.string().min(1).max(50).optional(),
    })
    .default({}),
  ignore: z
    .object({
      status: z.boolean().default(false),
      groups: z.boolean().default(false),
      channels: z.boolean().default(false),
      broadcast: z.boolean().default(false),
    })
    .default({ status: false, groups: false, channels: false, broadcast: false }),
  store: z
    .object({ enabled: z.boolean().default(true), fullSync: z.boolean().default(false) })
    .default({ enabled: true, fullSync: false }),
  webhooks: z.array(sessionWebhookSchema).max(10).default([]),
  /** outbound pacing: the defaults protect a number from being flagged for spam */
  pacing: z
    .object({
      enabled: z.boolean().default(true),
      messagesPerMinute: z.number().min(1).max(600).default(20),
      burst: z.number().int().min(1).max(100).default(5),
      jitterMs: z.number().int().min(0).max(60_000).default(1500),
    })
    .default({ enabled: true, messagesPerMinute: 20, burst: 5, jitterMs: 1500 }),
})

/**
 * A config as a PATCH gives it: only the fields named, each replacing the stored one whole,
 * and none filled in with its default (a field left out keeps its value). `proxy: null`
 * removes the proxy, which has no default to go back to.
 */
export const sessionConfigPatchSchema = z.object(
  Object.fromEntries(
    Object.entries(sessionConfigSchema.shape).map(([field, schema]) => {
      const given = schema instanceof z.ZodDefault ? schema.unwrap() : schema
      return [field, (field === 'proxy' ? given.nullable() : given).optional()]
    }),
  ) as unknown as { [K in keyof typeof sessionConfigSchema.shape]: z.ZodOptional<z.ZodType> },
)

export type SessionConfig = z.output<typeof sessionConfigSchema>
export type SessionConfigInput = z.input<typeof sessionConfigSchema>

/** Config fields a running session cannot change without reconnecting. */
export function fieldsNeedingRestart(before: SessionConfig, after: SessionConfig): string[] {
  const changed: string[] = []
  if (JSON.stringify(before.proxy) !== JSON.stringify(after.proxy)) changed.push('proxy')
  if (JSON.stringify(before.client) !== JSON.stringify(after.client)) changed.push('client')
  if (before.store.fullSync !== after.store.fullSync) changed.push('store.fullSync')
  return changed
}
