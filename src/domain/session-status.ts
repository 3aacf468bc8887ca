/** Where a session is, as the API reports it. */
export const SESSION_STATUSES = [
  'stopped',
  'starting',
  'scan_qr',
  'pairing',
  'authenticating',
  'ready',
  'reconnecting',
  'failed',
  'logged_out',
] as const

export type SessionStatus = (typeof SESSION_STATUSES)[number]

/** What the owner wants; the session manager converges the engine to it. */
export type DesiredState = 'running' | 'stopped'

export interface StatusChange {
  status: SessionStatus
  /** epoch milliseconds */
  at: number
  /** why, when it was not asked for (e.g. "connection lost (428)") */
  reason?: string
}

/** How many recent changes a session keeps and every `session.status` event carries. */
export const STATUS_HISTORY_LENGTH = 20

export function appendStatus(history: StatusChange[], change: StatusChange): StatusChange[] {
  return [...history, change].slice(-STATUS_HISTORY_LENGTH)
}

/** Statuses in which a socket is open or being opened. */
export const ACTIVE_STATUSES: ReadonlySet<SessionStatus> = new Set([
  'starting',
  'scan_qr',
  'pairing',
  'authenticating',
  'ready',
  'reconnecting',
])

/** Statuses in which a QR or pairing code can be asked for. */
export const LINKING_STATUSES: ReadonlySet<SessionStatus> = new Set(['starting', 'scan_qr', 'pairing'])
