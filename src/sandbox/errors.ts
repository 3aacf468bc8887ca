/** The closed set of control-API error codes, each with its HTTP status. */
export const SANDBOX_ERROR_STATUS = {
  invalid_request: 400,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  wrong_code: 422,
  expired: 410,
  not_linked: 409,
  timeout: 504,
} as const

export type SandboxErrorCode = keyof typeof SANDBOX_ERROR_STATUS

/** An error a control-API caller caused and can act on; its message is safe to show. */
export class SandboxError extends Error {
  readonly code: SandboxErrorCode

  constructor(code: SandboxErrorCode, message: string) {
    super(message)
    this.code = code
    this.name = 'SandboxError'
  }

  get status(): number {
    return SANDBOX_ERROR_STATUS[this.code]
  }
}
