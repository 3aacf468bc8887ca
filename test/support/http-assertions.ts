import assert from 'node:assert/strict'
import type { LightMyRequestResponse } from 'fastify'

export interface ErrorBody {
  error: { code: string; message: string; requestId: string; details?: { path?: string; message: string }[] }
}

/**
 * Asserts `response` is the one error envelope with this status and code, and that its
 * `x-request-id` header names the same request as the body. Returns the error for more checks.
 */
export function assertError(
  response: LightMyRequestResponse,
  status: number,
  code: string,
): ErrorBody['error'] {
  assert.equal(response.statusCode, status, response.body)
  const body = response.json() as ErrorBody
  assert.deepEqual(Object.keys(body), ['error'], response.body)
  assert.equal(body.error.code, code, response.body)
  assert.equal(typeof body.error.message, 'string')
  assert.ok(body.error.message.length > 0, 'an error says what went wrong')
  assert.match(body.error.requestId, /^req_/)
  assert.equal(response.headers['x-request-id'], body.error.requestId)
  return body.error
}

/** Asserts a 400 whose details name `path` (e.g. `body.config.proxy.server`) and whose message names the field. */
export function assertInvalidField(response: LightMyRequestResponse, path: string): ErrorBody['error'] {
  const error = assertError(response, 400, 'invalid_request')
  const paths = (error.details ?? []).map((detail) => detail.path)
  assert.ok(paths.includes(path), `expected details to name ${path}, got ${JSON.stringify(paths)}`)
  const field = path.split('.').at(-1) ?? path
  assert.ok(error.message.includes(field), `expected the message to name ${field}: ${error.message}`)
  return error
}
