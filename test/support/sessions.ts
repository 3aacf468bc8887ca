import assert from 'node:assert/strict'
import type { TestGateway } from './gateway.ts'
import { eventually } from './wait.ts'

/** A session as the API returns it (the fields tests look at). */
export interface SessionBody {
  id: string
  name: string
  status: string
  statusHistory: { status: string; at: number; reason?: string }[]
  lastError: string | null
  phone: string | null
  jid: string | null
  lid: string | null
  pushName: string | null
  config: Record<string, unknown>
  metadata: Record<string, string>
  sandbox: boolean
  connectedAt: string | null
  reconnectCount: number
}

export async function getSession(gateway: TestGateway, idOrName: string): Promise<SessionBody> {
  const response = await gateway.request('GET', `/api/v1/sessions/${idOrName}`)
  assert.equal(response.statusCode, 200, response.body)
  return response.json() as SessionBody
}

/** Polls the API until the session reports `status` (and `also`, when given). */
export function waitForStatus(
  gateway: TestGateway,
  idOrName: string,
  status: string,
  options: { timeoutMs?: number; also?: (session: SessionBody) => boolean } = {},
): Promise<SessionBody> {
  return eventually(
    async () => {
      const session = await getSession(gateway, idOrName)
      return session.status === status && (options.also?.(session) ?? true) && session
    },
    `session ${idOrName} to be ${status}`,
    options.timeoutMs,
  )
}

/** The QR the API shows for a session, once it has one. */
export function waitForQr(
  gateway: TestGateway,
  idOrName: string,
): Promise<{ value: string; image: string; expiresAt: string; status: string }> {
  return eventually(async () => {
    const response = await gateway.request('GET', `/api/v1/sessions/${idOrName}/qr`)
    return response.statusCode === 200 && response.json()
  }, `a QR for ${idOrName}`)
}

export async function createSession(
  gateway: TestGateway,
  body: { name: string; start?: boolean; config?: unknown; sandbox?: boolean },
): Promise<SessionBody> {
  const response = await gateway.request('POST', '/api/v1/sessions', { body: { sandbox: true, ...body } })
  assert.equal(response.statusCode, 201, response.body)
  return response.json() as SessionBody
}

/** Creates a sandbox session, scans its QR with `phoneNumber`'s phone, and waits until it is ready. */
export async function createLinkedSession(
  gateway: TestGateway,
  name: string,
  phoneNumber: string,
): Promise<SessionBody> {
  await createSession(gateway, { name })
  await scanWith(gateway, name, phoneNumber)
  return waitForStatus(gateway, name, 'ready')
}

/** Links an already started session by a sandbox scan of its current QR. */
export async function scanWith(gateway: TestGateway, idOrName: string, phoneNumber: string): Promise<void> {
  const qr = await waitForQr(gateway, idOrName)
  const scan = await gateway.request('POST', '/api/v1/sandbox/scan', { body: { qr: qr.value, phoneNumber } })
  assert.equal(scan.statusCode, 200, scan.body)
}

/** How many times the sandbox saw clients ask to unlink their device (Baileys' logout). */
export const unlinkRequests = (gateway: TestGateway): number =>
  gateway.sandbox.iqs.seen.get('md|set|remove-companion-device') ?? 0
