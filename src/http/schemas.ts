import { z } from 'zod'
import { API_KEY_ROLES } from '../accounts/api-key.types.ts'
import { sessionConfigPatchSchema, sessionConfigSchema } from '../domain/session-config.ts'
import { SESSION_STATUSES } from '../domain/session-status.ts'

/** Request and response shapes of the native API; they produce validation, types and the OpenAPI document. */

export const errorEnvelope = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      requestId: z.string(),
      details: z.array(z.object({ path: z.string().optional(), message: z.string() })).optional(),
    }),
  })
  .meta({ id: 'Error' })

/** What each error status of the API means, once for every route that documents it. */
const ERROR_MEANINGS = {
  400: 'Invalid request: `error.details` names each field and why',
  401: 'No key, or an unknown, expired or revoked one',
  403: 'The key lacks the role, or may not use the session',
  404: 'Not found: the session, or what the path names',
  409: 'Not possible now, e.g. the session is not ready',
  413: 'The request body is larger than the route takes',
  415: 'The body’s Content-Type is not one the route reads: JSON, or multipart/form-data where it says so',
} as const

export type ErrorStatus = keyof typeof ERROR_MEANINGS

const described = <S extends ErrorStatus>(statuses: S[]) =>
  Object.fromEntries(
    statuses.map((status) => [status, errorEnvelope.describe(ERROR_MEANINGS[status])]),
  ) as Record<S, typeof errorEnvelope>

/**
 * A route's error responses for the OpenAPI document (and the serializer), each described:
 * 401 and 403 always, since every route under /api/v1 needs a key; `statuses` besides.
 */
export const errorResponses = <S extends ErrorStatus>(...statuses: S[]) =>
  described<S | 401 | 403>([401, 403, ...statuses])

/** What a route that reads a body may answer besides: the body too large, or not one it reads. */
export const bodyErrorResponses = described([413, 415])

/**
 * A time as `Date#toISOString` writes it. Published as `date-time`, checked only as a
 * string: an odd stored time should not fail a whole page of results.
 */
export const isoTime = z.string().meta({ format: 'date-time' })

export const sessionName = z.string().regex(/^[A-Za-z0-9-]{3,50}$/, '3–50 letters, digits and hyphens')

export const sessionIdParam = z.object({
  id: z.string().min(1).max(100).describe('session id (ses_…) or name'),
})

const statusChange = z.object({
  status: z.enum(SESSION_STATUSES),
  at: z.number(),
  reason: z.string().optional(),
})

export const sessionView = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.enum(SESSION_STATUSES),
    statusHistory: z.array(statusChange),
    lastError: z.string().nullable(),
    phone: z.string().nullable(),
    pushName: z.string().nullable(),
    jid: z.string().nullable(),
    lid: z.string().nullable(),
    config: z.record(z.string(), z.unknown()),
    metadata: z.record(z.string(), z.string()),
    sandbox: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
    connectedAt: z.string().nullable(),
    lastActiveAt: z.string().nullable(),
    reconnectCount: z.number(),
  })
  .meta({ id: 'Session' })

export const createSessionBody = z.object({
  name: sessionName,
  config: sessionConfigSchema.optional(),
  start: z.boolean().default(true),
  sandbox: z.boolean().default(false),
})

export const updateSessionBody = z
  .object({ name: sessionName.optional(), config: sessionConfigPatchSchema.optional() })
  .refine((body) => body.name !== undefined || body.config !== undefined, 'give name and/or config')

export const listSessionsQuery = z.object({
  status: z.enum(SESSION_STATUSES).optional(),
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
})

export const qrQuery = z.object({ format: z.enum(['json', 'png', 'raw']).default('json') })

export const qrView = z.object({
  value: z.string(),
  image: z.string().describe('PNG as a data URL'),
  expiresAt: z.string(),
  status: z.enum(SESSION_STATUSES),
})

export const pairingCodeBody = z.object({
  phoneNumber: z.string().min(1).max(32).describe('digits with country code; + and spaces are tolerated'),
})

export const pairingCodeView = z.object({ code: z.string(), expiresAt: z.string() })

export const meView = z.object({
  jid: z.string(),
  lid: z.string().nullable(),
  phone: z.string(),
  pushName: z.string().nullable(),
  platform: z.string().nullable(),
  deviceId: z.number().nullable(),
})

export const apiKeyView = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string(),
    role: z.enum(API_KEY_ROLES),
    sessionIds: z.array(z.string()).nullable(),
    expiresAt: z.string().nullable(),
    lastUsedAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: 'ApiKey' })

// Strict: a misspelt `sessionIds` would otherwise make a key for every session.
export const createApiKeyBody = z.strictObject({
  name: z.string().min(1).max(100),
  role: z.enum(API_KEY_ROLES),
  sessionIds: z
    .array(z.string().min(1).max(100))
    .min(1, 'name at least one session, or leave sessionIds out for every session')
    .max(100)
    .optional()
    .describe("the sessions the key may use, by id or name; left out: every one of the organization's"),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
})

export const idParam = z.object({ id: z.string().min(1).max(100) })
