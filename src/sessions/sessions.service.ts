import type { Principal } from '../accounts/api-key.types.ts'
import {
  AppError,
  conflict,
  type ErrorDetail,
  invalidRequest,
  invalidState,
  notFound,
} from '../domain/errors.ts'
import type { IdGenerator } from '../domain/ids.ts'
import { fieldsNeedingRestart, type SessionConfig, sessionConfigSchema } from '../domain/session-config.ts'
import { ACTIVE_STATUSES, type SessionStatus } from '../domain/session-status.ts'
import type { SecretBox } from '../security/secret-box.ts'
import { TargetRefusedError } from '../webhooks/ssrf-guard.ts'
import { isReservedHeader } from '../webhooks/webhook-headers.ts'
import type { SessionPatch, SessionRecord } from './session.types.ts'
import type { SessionManager } from './session-manager.ts'
import { sealConfig } from './session-secrets.ts'

/** What the service needs from the sessions repository, in domain shapes. */
export interface SessionRepositoryPort {
  create(record: SessionRecord): Promise<void>
  getById(organizationId: string, id: string): Promise<SessionRecord | undefined>
  getByName(organizationId: string, name: string): Promise<SessionRecord | undefined>
  list(
    organizationId: string,
    query: { status?: SessionStatus; cursor?: string; limit: number; ids?: string[] },
  ): Promise<{ items: SessionRecord[]; nextCursor: string | null; total: number }>
  update(id: string, patch: SessionPatch): Promise<SessionRecord>
  delete(id: string): Promise<void>
}

/**
 * Checks a webhook URL before it is saved: the webhooks' SSRF guard, which throws
 * TargetRefusedError for a target that is not http(s) or resolves to an off-limits address.
 */
export interface WebhookUrlCheck {
  check(url: string): Promise<void>
}

export interface CreateSessionInput {
  name: string
  config?: unknown
  start: boolean
  sandbox: boolean
}

/**
 * The sessions API's rules: naming, tenancy and key scope, config with sealed secrets,
 * and the state checks around the session manager's operations.
 */
export class SessionsService {
  private readonly repository: SessionRepositoryPort
  private readonly manager: SessionManager
  private readonly box: SecretBox
  private readonly newId: IdGenerator
  private readonly webhookUrls: WebhookUrlCheck
  private readonly now: () => number

  constructor(deps: {
    repository: SessionRepositoryPort
    manager: SessionManager
    secretBox: SecretBox
    newId: IdGenerator
    /** the same guard organization webhooks are saved through */
    webhookUrls: WebhookUrlCheck
    now?: () => number
  }) {
    this.repository = deps.repository
    this.manager = deps.manager
    this.box = deps.secretBox
    this.newId = deps.newId
    this.webhookUrls = deps.webhookUrls
    this.now = deps.now ?? Date.now
  }

  async create(principal: Principal, input: CreateSessionInput): Promise<SessionRecord> {
    if (principal.sessionIds)
      throw new AppError('forbidden', 'a key scoped to sessions cannot create sessions')
    const config = parseConfig(input.config ?? {})
    await this.checkWebhooks(config)
    if (await this.repository.getByName(principal.organizationId, input.name)) {
      throw conflict(`a session named ${input.name} already exists`)
    }
    const now = this.now()
    const record: SessionRecord = {
      id: this.newId('session'),
      organizationId: principal.organizationId,
      name: input.name,
      status: 'stopped',
      desiredState: 'stopped',
      sandbox: input.sandbox,
      config: sealConfig(config, this.box),
      statusHistory: [{ status: 'stopped', at: now, reason: 'created' }],
      lastError: null,
      phone: null,
      pushName: null,
      jid: null,
      lid: null,
      platform: null,
      deviceId: null,
      connectedAt: null,
      lastActiveAt: null,
      reconnectCount: 0,
      createdAt: now,
      updatedAt: now,
    }
    await this.repository.create(record)
    return input.start ? this.manager.start(record.id) : record
  }

  async list(principal: Principal, query: { status?: SessionStatus; cursor?: string; limit: number }) {
    return this.repository.list(principal.organizationId, {
      ...query,
      ids: principal.sessionIds ?? undefined,
    })
  }

  /** The organization's session with this id or name, if there is one. */
  async find(organizationId: string, idOrName: string): Promise<SessionRecord | undefined> {
    return (
      (await this.repository.getById(organizationId, idOrName)) ??
      (await this.repository.getByName(organizationId, idOrName))
    )
  }

  /** A session by id or by name, if the caller's organization and key scope include it. */
  async get(principal: Principal, idOrName: string): Promise<SessionRecord> {
    const session = await this.find(principal.organizationId, idOrName)
    if (!session) throw notFound(`session ${idOrName}`)
    if (principal.sessionIds && !principal.sessionIds.includes(session.id)) {
      throw new AppError('forbidden', 'this API key is not allowed to use this session')
    }
    return session
  }

  /** Renames and/or reconfigures; a running session applies what it can and names what needs a restart. */
  async update(
    principal: Principal,
    idOrName: string,
    input: { name?: string; config?: unknown },
  ): Promise<{ session: SessionRecord; restartRequired: string[] }> {
    const session = await this.get(principal, idOrName)
    const patch: SessionPatch = {}
    if (input.name !== undefined && input.name !== session.name) {
      if (await this.repository.getByName(principal.organizationId, input.name)) {
        throw conflict(`a session named ${input.name} already exists`)
      }
      patch.name = input.name
    }
    let restartRequired: string[] = []
    if (input.config !== undefined) {
      // `proxy: null` removes it: parsed as left out, and named, so the stored one goes.
      const given = { ...(input.config as Record<string, unknown>) }
      if (given.proxy === null) delete given.proxy
      const config = parseConfig(given)
      await this.checkWebhooks(config, session.config)
      const sealed = sealConfig(config, this.box, session.config)
      // A patch: the config's fields it names replace theirs, the others keep their values
      // (before, a PATCH of the webhooks alone reset the metadata every event carries).
      const named = new Set(Object.keys(input.config as object))
      const fields = new Set([...Object.keys(sealed), ...Object.keys(session.config)]) as Set<
        keyof SessionConfig
      >
      patch.config = Object.fromEntries(
        [...fields].map((field) => [field, named.has(field) ? sealed[field] : session.config[field]]),
      ) as SessionConfig
      if (ACTIVE_STATUSES.has(session.status))
        restartRequired = fieldsNeedingRestart(session.config, patch.config)
    }
    const updated = Object.keys(patch).length ? await this.repository.update(session.id, patch) : session
    return { session: updated, restartRequired }
  }

  /**
   * A session's webhooks get the checks organization webhooks get when saved: no header
   * of ours overridden, and no target the SSRF guard refuses. A URL the session already had
   * is not resolved again (it passed when it was saved, and every delivery checks it anew),
   * so an unrelated edit cannot fail on a receiver's DNS hiccup. Every problem is named.
   */
  private async checkWebhooks(config: SessionConfig, previous?: SessionConfig): Promise<void> {
    const perWebhook = await Promise.all(
      config.webhooks.map(async (webhook, index): Promise<ErrorDetail[]> => {
        const field = `body.config.webhooks.${index}`
        const problems: ErrorDetail[] = webhook.customHeaders.flatMap((header, position) =>
          isReservedHeader(header.name)
            ? [
                {
                  path: `${field}.customHeaders.${position}.name`,
                  message: `${header.name} is set by the gateway and cannot be overridden`,
                },
              ]
            : [],
        )
        if (previous?.webhooks.some((saved) => saved.url === webhook.url)) return problems
        try {
          await this.webhookUrls.check(webhook.url)
        } catch (error) {
          if (!(error instanceof TargetRefusedError)) throw error
          problems.unshift({ path: `${field}.url`, message: error.message })
        }
        return problems
      }),
    )
    const details = perWebhook.flat()
    const first = details[0]
    if (first) throw invalidRequest(`${first.path}: ${first.message}`, details)
  }

  async delete(principal: Principal, idOrName: string): Promise<void> {
    const session = await this.get(principal, idOrName)
    await this.manager.remove(session.id)
    await this.repository.delete(session.id)
  }

  async start(principal: Principal, idOrName: string): Promise<SessionRecord> {
    return this.manager.start((await this.get(principal, idOrName)).id)
  }

  async stop(principal: Principal, idOrName: string): Promise<SessionRecord> {
    return this.manager.stop((await this.get(principal, idOrName)).id)
  }

  async restart(principal: Principal, idOrName: string): Promise<SessionRecord> {
    return this.manager.restart((await this.get(principal, idOrName)).id)
  }

  async logout(principal: Principal, idOrName: string): Promise<SessionRecord> {
    return this.manager.logout((await this.get(principal, idOrName)).id)
  }

  async qr(principal: Principal, idOrName: string) {
    const session = await this.get(principal, idOrName)
    return { ...this.manager.currentQr(session), status: session.status }
  }

  async pairingCode(principal: Principal, idOrName: string, phoneNumber: string) {
    const session = await this.get(principal, idOrName)
    return this.manager.requestPairingCode(session.id, normalizePhoneNumber(phoneNumber))
  }

  async me(principal: Principal, idOrName: string) {
    const session = await this.get(principal, idOrName)
    if (!session.jid || !session.phone)
      throw invalidState('the session is not linked to a WhatsApp account yet')
    return {
      jid: session.jid,
      lid: session.lid,
      phone: session.phone,
      pushName: session.pushName,
      platform: session.platform,
      deviceId: session.deviceId,
    }
  }
}

/** `+62 812-345-6789` → `628123456789`; 6–15 digits with the country code. */
export function normalizePhoneNumber(input: string): string {
  const digits = input.replace(/[\s+\-().]/g, '')
  if (!/^\d{6,15}$/.test(digits)) {
    throw invalidRequest(
      'phoneNumber must be 6–15 digits with the country code (+, spaces and dashes allowed)',
      [{ path: 'body.phoneNumber', message: 'expected 6–15 digits with the country code' }],
    )
  }
  return digits
}

function parseConfig(input: unknown): SessionConfig {
  const parsed = sessionConfigSchema.safeParse(input)
  if (parsed.success) return parsed.data
  const details = parsed.error.issues.map((issue) => ({
    path: ['body', 'config', ...issue.path.map(String)].join('.'),
    message: issue.message,
  }))
  throw invalidRequest(details[0] ? `${details[0].path}: ${details[0].message}` : 'invalid config', details)
}
