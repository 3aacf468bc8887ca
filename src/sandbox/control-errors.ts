import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { SandboxError } from './errors.ts'

/** The error envelope of every non-2xx answer of the control API. */
export const controlErrorBody = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      requestId: z.string(),
      details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    }),
  })
  .meta({ id: 'SandboxError' })

export type ControlErrorBody = z.output<typeof controlErrorBody>

/** What each status a control route answers with means, by the codes behind it (errors.ts). */
const STATUS_MEANINGS = {
  400: '`invalid_request`: a field fails validation (`error.details` names each and why), or the request cannot be done as asked',
  403: '`forbidden`: the simulated member may not make this change to the group',
  404: '`not_found`: no such simulated person, group or message, or no client waiting for this',
  409: '`conflict` (it exists already, or was done already) or `not_linked` (no linked device to reach)',
  410: '`expired`: the QR has expired; scan the one the client shows now',
  422: '`wrong_code`: not the code the client shows; the user may type again',
  504: '`timeout`: the client did not finish in time',
} as const

/** A control route's error responses, each described, for the OpenAPI document (and the serializer). */
export const controlErrorResponses = <S extends keyof typeof STATUS_MEANINGS>(...statuses: S[]) =>
  Object.fromEntries(
    statuses.map((status) => [status, controlErrorBody.describe(STATUS_MEANINGS[status])]),
  ) as Record<S, typeof controlErrorBody>

export const envelope = (
  code: string,
  message: string,
  requestId: string,
  details?: { path: string; message: string }[],
): ControlErrorBody => ({ error: { code, message, requestId, ...(details ? { details } : {}) } })

/**
 * The one place the control API's errors become answers: a SandboxError keeps its code and
 * status; a failed validation is 400 naming each field (`body.from`, `params.phoneNumber`)
 * and why; other client errors (bad JSON, wrong content type) keep their 4xx; everything
 * else is a 500 that is logged and never echoed. The plugin uses it for what it owns; the
 * standalone runner installs it at the root for the rest.
 */
export function sendControlError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const { id } = request
  if (error instanceof SandboxError)
    return reply.code(error.status).send(envelope(error.code, error.message, id))
  if (error.validation) {
    const where = error.validationContext ?? 'body'
    const details = error.validation.map((issue) => ({
      path: [where, ...issue.instancePath.split('/').filter(Boolean)].join('.'),
      message: issue.message ?? 'is invalid',
    }))
    const message = details.map((d) => `${d.path}: ${d.message}`).join('; ')
    return reply.code(400).send(envelope('invalid_request', message, id, details))
  }
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) {
    return reply
      .code(status)
      .send(envelope(status === 404 ? 'not_found' : 'invalid_request', error.message, id))
  }
  request.log.error({ err: error }, 'sandbox control request failed')
  return reply.code(500).send(envelope('internal', 'the sandbox failed to handle this request', id))
}
