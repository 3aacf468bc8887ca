import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod'
import { AppError, type ErrorCode, type ErrorDetail } from '../domain/errors.ts'

/** The one place error codes become HTTP statuses. */
export const STATUS_BY_CODE: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  invalid_state: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
}

export interface ErrorEnvelope {
  error: { code: ErrorCode; message: string; requestId: string; details?: ErrorDetail[] }
}

export function envelope(
  code: ErrorCode,
  message: string,
  requestId: string,
  details?: ErrorDetail[],
): ErrorEnvelope {
  return { error: { code, message, requestId, ...(details?.length ? { details } : {}) } }
}

/**
 * Maps anything thrown in a route to the envelope. Validation failures name each field and
 * why; app errors carry their own safe message; everything else is a 500 whose details stay
 * in the log (with the request id), never in the response.
 */
export function handleError(
  error: FastifyError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  if (error instanceof AppError) {
    return reply
      .status(STATUS_BY_CODE[error.code])
      .send(envelope(error.code, error.message, request.id, error.details))
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const details = error.validation.map((issue) => ({
      path: [error.validationContext, ...issue.instancePath.split('/').filter(Boolean)].join('.'),
      message: issue.message ?? 'is invalid',
    }))
    const first = details[0]
    const message = first ? `${first.path}: ${first.message}` : 'the request is invalid'
    return reply.status(400).send(envelope('invalid_request', message, request.id, details))
  }
  const fastifyError = error as FastifyError
  if (fastifyError.statusCode === 413) {
    return reply.status(413).send(envelope('payload_too_large', 'the request body is too large', request.id))
  }
  if (fastifyError.statusCode === 415) {
    const message = `the request body must be JSON (Content-Type: application/json), not ${request.headers['content-type'] ?? 'untyped'}`
    return reply
      .status(415)
      .send(
        envelope('unsupported_media_type', message, request.id, [{ path: 'headers.content-type', message }]),
      )
  }
  if (fastifyError.statusCode && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    // Fastify's own client errors (malformed JSON, an empty JSON body): their messages are safe,
    // and the body parser's are about the body.
    const aboutBody = fastifyError.code?.startsWith('FST_ERR_CTP_')
    return reply
      .status(400)
      .send(
        envelope(
          'invalid_request',
          fastifyError.message,
          request.id,
          aboutBody ? [{ path: 'body', message: fastifyError.message }] : undefined,
        ),
      )
  }
  request.log.error({ err: error }, 'unhandled error')
  return reply.status(500).send(envelope('internal', 'something went wrong on our side', request.id))
}
