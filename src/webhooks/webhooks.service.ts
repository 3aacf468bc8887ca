import { type AppError, type ErrorDetail, invalidRequest, notFound } from '../domain/errors.ts'
import type { IdGenerator } from '../domain/ids.ts'
import type { SecretBox } from '../security/secret-box.ts'
import { resolveSessionIds, type SessionResolver } from '../sessions/session-resolver.ts'
import type { WebhookPatch, WebhooksRepository } from '../store/webhooks.repository.ts'
import type { CircuitStatus } from './circuit-breaker.ts'
import { DEFAULT_RETRIES } from './retry-policy.ts'
import type { WebhookSender } from './sender.ts'
import { generateSecret, secretProblem } from './signing.ts'
import { type SsrfGuard, TargetRefusedError } from './ssrf-guard.ts'
import { webhookTarget } from './subscriptions.ts'
import type {
  CustomHeader,
  RetrySettings,
  SendResult,
  SignatureScheme,
  WebhookRecord,
} from './webhook.types.ts'
import { isReservedHeader } from './webhook-headers.ts'

export interface CreateWebhookInput {
  url: string
  description?: string | null
  events?: string[]
  sessionIds?: string[]
  /** omitted: one is generated and returned once */
  secret?: string
  customHeaders?: CustomHeader[]
  signatureScheme?: SignatureScheme
  retries?: RetrySettings
  ordered?: boolean
  enabled?: boolean
}

export type UpdateWebhookInput = Partial<Omit<CreateWebhookInput, 'retries'>> & {
  /** what is left out keeps its current value */
  retries?: Partial<RetrySettings>
}

export interface TestResult extends SendResult {
  delivered: boolean
  eventId: string
}

/**
 * Organization webhooks: their rules (targets, secrets, headers), and a signed test send.
 * Their deliveries, and sessions' own webhooks', are WebhookDeliveriesService's.
 */
export class WebhooksService {
  private readonly webhooks: WebhooksRepository
  private readonly guard: SsrfGuard
  private readonly sender: WebhookSender
  private readonly secretBox: SecretBox
  private readonly newId: IdGenerator
  private readonly now: () => number
  private readonly onChanged: (webhookId: string) => void
  private readonly circuitOf: (webhookId: string) => CircuitStatus
  private readonly sessions?: SessionResolver

  constructor(deps: {
    webhooks: WebhooksRepository
    guard: SsrfGuard
    sender: WebhookSender
    secretBox: SecretBox
    newId: IdGenerator
    now?: () => number
    /** a webhook was edited or deleted: deliveries on their way to it are taken back */
    onChanged?: (webhookId: string) => void
    /** the delivery worker's circuit for the webhook's endpoint */
    circuitOf?: (webhookId: string) => CircuitStatus
    /** `sessionIds` may name sessions; each must be one of the organization's */
    sessions?: SessionResolver
  }) {
    this.webhooks = deps.webhooks
    this.guard = deps.guard
    this.sender = deps.sender
    this.secretBox = deps.secretBox
    this.newId = deps.newId
    this.now = deps.now ?? Date.now
    this.onChanged = deps.onChanged ?? (() => {})
    this.circuitOf = deps.circuitOf ?? (() => CLOSED)
    this.sessions = deps.sessions
  }

  /** The webhook, and its secret when it was generated here (shown only this once). */
  async create(
    organizationId: string,
    input: CreateWebhookInput,
  ): Promise<{ webhook: WebhookRecord; generatedSecret: string | null }> {
    const scheme = input.signatureScheme ?? 'standard'
    await this.checkUrl(input.url)
    checkHeaders(input.customHeaders ?? [])
    const generatedSecret = input.secret === undefined ? generateSecret() : null
    const secret = input.secret ?? (generatedSecret as string)
    checkSecret(scheme, secret)
    const sessionIds = await this.sessionIdsOf(organizationId, input.sessionIds ?? [])
    const at = this.now()
    const webhook: WebhookRecord = {
      id: this.newId('webhook'),
      organizationId,
      url: input.url,
      description: input.description ?? null,
      events: dedupe(input.events ?? ['*']),
      sessionIds,
      secret: this.secretBox.encrypt(secret),
      customHeaders: input.customHeaders ?? [],
      signatureScheme: scheme,
      retries: input.retries ?? DEFAULT_RETRIES,
      ordered: input.ordered ?? false,
      enabled: input.enabled ?? true,
      disabledReason: null,
      createdAt: at,
      updatedAt: at,
    }
    await this.webhooks.create(webhook)
    return { webhook, generatedSecret }
  }

  list(organizationId: string): Promise<WebhookRecord[]> {
    return this.webhooks.listByOrganization(organizationId)
  }

  async get(organizationId: string, id: string): Promise<WebhookRecord> {
    const webhook = await this.webhooks.getById(organizationId, id)
    if (!webhook) throw notFound('webhook')
    return webhook
  }

  async update(organizationId: string, id: string, input: UpdateWebhookInput): Promise<WebhookRecord> {
    const current = await this.get(organizationId, id)
    if (input.url !== undefined) await this.checkUrl(input.url)
    if (input.customHeaders !== undefined) checkHeaders(input.customHeaders)
    // The ids it holds stay valid though a session is gone: a list read and sent back is taken as it was.
    const sessionIds =
      input.sessionIds === undefined
        ? undefined
        : await this.sessionIdsOf(organizationId, input.sessionIds, current.sessionIds)
    const scheme = input.signatureScheme ?? current.signatureScheme
    if (input.secret !== undefined) checkSecret(scheme, input.secret)
    else if (input.signatureScheme !== undefined) {
      // A kept secret must still fit the new scheme (a legacy secret is not a whsec_ key).
      const problem = secretProblem(scheme, this.secretBox.decrypt(current.secret))
      if (problem) throw invalidField('secret', `give a new secret for the ${scheme} scheme: ${problem}`)
    }
    const patch: WebhookPatch = {
      ...(input.url !== undefined ? { url: input.url } : {}),
      ...(input.description !== undefined ? { description: input.description } : {}),
      ...(input.events !== undefined ? { events: dedupe(input.events) } : {}),
      ...(sessionIds !== undefined ? { sessionIds } : {}),
      ...(input.secret !== undefined ? { secret: this.secretBox.encrypt(input.secret) } : {}),
      ...(input.customHeaders !== undefined ? { customHeaders: input.customHeaders } : {}),
      ...(input.signatureScheme !== undefined ? { signatureScheme: input.signatureScheme } : {}),
      ...(input.retries !== undefined
        ? { retries: { ...current.retries, ...definedOnly(input.retries) } }
        : {}),
      ...(input.ordered !== undefined ? { ordered: input.ordered } : {}),
      // Enabling again clears the reason the gateway disabled it for.
      ...(input.enabled !== undefined ? { enabled: input.enabled, disabledReason: null } : {}),
      updatedAt: this.now(),
    }
    const updated = await this.webhooks.update(organizationId, id, patch)
    if (!updated) throw notFound('webhook')
    this.onChanged(id)
    return updated
  }

  /** Its endpoint's circuit breaker now: whether deliveries are held back, and until when. */
  circuit(webhookId: string): CircuitStatus {
    return this.circuitOf(webhookId)
  }

  async delete(organizationId: string, id: string): Promise<void> {
    if (!(await this.webhooks.delete(organizationId, id))) throw notFound('webhook')
    this.onChanged(id)
  }

  /** Sends a signed `webhook.test` event now, outside the outbox, and reports what happened. */
  async test(organizationId: string, id: string): Promise<TestResult> {
    const webhook = await this.get(organizationId, id)
    // The envelope every event has, so a receiver's parser is tested too.
    const event = {
      id: this.newId('event'),
      type: 'webhook.test',
      session: null,
      organization: organizationId,
      timestamp: new Date(this.now()).toISOString(),
      data: { webhookId: webhook.id },
    }
    const sent = await this.sender.send({
      target: webhookTarget(webhook),
      eventId: event.id,
      body: JSON.stringify(event),
    })
    // Not sent only when the gateway is closing: said as a failed try.
    const result =
      'notSent' in sent ? { statusCode: null, durationMs: 0, error: sent.notSent, response: null } : sent
    const code = result.statusCode
    return { ...result, eventId: event.id, delivered: code !== null && code >= 200 && code < 300 }
  }

  /** The ids `idsOrNames` stand for; those in `held` (the webhook's now) are taken as they are. */
  private async sessionIdsOf(
    organizationId: string,
    idsOrNames: readonly string[],
    held: readonly string[] = [],
  ): Promise<string[]> {
    const sessions = this.sessions
    if (!sessions) return dedupe(idsOrNames)
    const known = new Set(held)
    const resolver = {
      find: async (organization: string, idOrName: string) =>
        known.has(idOrName) ? { id: idOrName } : sessions.find(organization, idOrName),
    }
    return resolveSessionIds(resolver, organizationId, idsOrNames, 'body.sessionIds')
  }

  private async checkUrl(url: string): Promise<void> {
    try {
      await this.guard.check(url, { fresh: true })
    } catch (error) {
      if (error instanceof TargetRefusedError) throw invalidField('url', error.message)
      throw error
    }
  }
}

/** Worded as request validation words its errors: `body.url: …`. */
function invalidField(field: string, message: string): AppError {
  const path = `body.${field}`
  return invalidRequest(`${path}: ${message}`, [{ path, message }])
}

function checkHeaders(headers: readonly CustomHeader[]): void {
  const details: ErrorDetail[] = headers
    .map((header, index) => ({ header, index }))
    .filter(({ header }) => isReservedHeader(header.name))
    .map(({ header, index }) => ({
      path: `body.customHeaders.${index}.name`,
      message: `${header.name} is set by the gateway and cannot be overridden`,
    }))
  const first = details[0]
  if (first) throw invalidRequest(`${first.path}: ${first.message}`, details)
}

function checkSecret(scheme: SignatureScheme, secret: string): void {
  const problem = secretProblem(scheme, secret)
  if (problem) throw invalidField('secret', problem)
}

/** `{ a: undefined }` must not erase `a` when spread over the current value. */
function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

const CLOSED: CircuitStatus = { state: 'closed', consecutiveFailures: 0, openSince: null, nextProbeAt: null }

const dedupe = (values: readonly string[]): string[] => [...new Set(values)]
