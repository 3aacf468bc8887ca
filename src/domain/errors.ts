/**
 * The closed set of error codes wagate answers with. Only `http/errors.ts` maps them to
 * HTTP statuses; services throw `AppError` and never know about HTTP.
 */
export const ERROR_CODES = [
  'invalid_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'conflict',
  'invalid_state',
  'rate_limited',
  'payload_too_large',
  'unsupported_media_type',
  'unavailable',
  'internal',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

export interface ErrorDetail {
  /** the field, as a dotted path (`config.proxy.server`), when the error is about one */
  path?: string
  message: string
}

/** An error whose message is safe to show to the caller. */
export class AppError extends Error {
  readonly code: ErrorCode
  readonly details?: ErrorDetail[]

  constructor(code: ErrorCode, message: string, details?: ErrorDetail[]) {
    super(message)
    this.name = 'AppError'
    this.code = code
    this.details = details
  }
}

export const notFound = (what: string) => new AppError('not_found', `${what} not found`)
export const conflict = (message: string) => new AppError('conflict', message)
export const invalidState = (message: string) => new AppError('invalid_state', message)
export const invalidRequest = (message: string, details?: ErrorDetail[]) =>
  new AppError('invalid_request', message, details)
