import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { type AppError, type ErrorDetail, invalidRequest, invalidState, notFound } from '../domain/errors.ts'
import type { IdGenerator } from '../domain/ids.ts'
import type { SecretBox } from '../security/secret-box.ts'
import type {
  DeliveryListQuery,
  DeliveryOwner,
  DeliveryPage,
  LogPosition,
  ReplayOptions,
  WebhookDeliveriesRepository,
} from '../store/webhook-deliveries.repository.ts'
import type { WebhookPatch, WebhooksRepository } from '../store/webhooks.repository.ts'
import { DEFAULT_RETRIES } from './retry-policy.ts'
import type { WebhookSender } from './sender.ts'
import { generateSecret, secretProblem } from './signing.ts'
import { type SsrfGuard, TargetRefusedError } from './ssrf-guard.ts'
import {
  type SessionWebhookConfig,
  sessionEndpointKey,
  sessionWebhookTarget,
  webhookTarget,
} from './subscriptions.ts'
import type {
  AttemptRecord,
  CustomHeader,
  DeliveryRecord,
  ReplayRange,
  RetrySettings,
  SendResult,
  SignatureScheme,
  WebhookRecord,
  WebhookTarget,
} from './webhook.types.ts'
import { isReservedHeader } from './webhook-headers.ts'

/**
 * Log rows a bulk replay looks at per transaction, a turn of the event loop between: the
 * writer lock is never held for long, however long the log.
 */
const REPLAY_STEP_ROWS = 500

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

/** A delivery with the bytes it sends and every attempt. */
export interface DeliveryDetail {
  delivery: DeliveryRecord
  body: string | null
  attempts: AttemptRecord[]
}

/**
 * Organization webhooks: their rules (targets, secrets, headers), deliveries and replays;
 * and the deliveries and replays of sessions' own webhooks.
 */
export class WebhooksService {
  private readonly webhooks: WebhooksRepository
  private readonly deliveries: WebhookDeliveriesRepository
  private readonly guard: SsrfGuard
  private readonly sender: WebhookSender
  private readonly secretBox: SecretBox
  private readonly newId: IdGenerator
  private readonly now: () => number
  private readonly onReplay: (endpointKeys: readonly string[]) => void
  private readonly dueAt: (endpointKey: string, now: number) => number
  private readonly onChanged: (webhookId: string) => void

  constructor(deps: {
    webhooks: WebhooksRepository
    deliveries: WebhookDeliveriesRepository
    guard: SsrfGuard
    sender: WebhookSender
    secretBox: SecretBox
    newId: IdGenerator
    now?: () => number
    /** deliveries to these endpoints were replayed and are due: wake the worker */
    onReplay?: (endpointKeys: readonly string[]) => void
    /**
     * When a delivery to this endpoint replayed now will be tried: now, or — its circuit
     * open — when the circuit lets a probe through (the worker's `heldBackUntil`).
     */
    dueAt?: (endpointKey: string, now: number) => number
    /** a webhook was edited or deleted: deliveries on their way to it are taken back */
    onChanged?: (webhookId: string) => void
  }) {
    this.webhooks = deps.webhooks
    this.deliveries = deps.deliveries
    this.guard = deps.guard
    this.sender = deps.sender
    this.secretBox = deps.secretBox
    this.newId = deps.newId
    this.now = deps.now ?? Date.now
    this.onReplay = deps.onReplay ?? (() => {})
    this.dueAt = deps.dueAt ?? ((_endpointKey, now) => now)
    this.onChanged = deps.onChanged ?? (() => {})
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
    const at = this.now()
    const webhook: WebhookRecord = {
      id: this.newId('webhook'),
      organizationId,
      url: input.url,
      description: input.description ?? null,
      events: dedupe(input.events ?? ['*']),
      sessionIds: dedupe(input.sessionIds ?? []),
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
      ...(input.sessionIds !== undefined ? { sessionIds: dedupe(input.sessionIds) } : {}),
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

  async delete(organizationId: string, id: string): Promise<void> {
    if (!(await this.webhooks.delete(organizationId, id))) throw notFound('webhook')
    this.onChanged(id)
  }

  async listDeliveries(organizationId: string, id: string, query: DeliveryListQuery): Promise<DeliveryPage> {
    await this.get(organizationId, id)
    return this.deliveries.listByWebhook(organizationId, id, query)
  }

  async getDelivery(organizationId: string, id: string, deliveryId: string): Promise<DeliveryDetail> {
    return this.detail(organizationId, id, deliveryId)
  }

  /** Sends a dead delivery again, with a fresh retry budget. */
  async retryDelivery(organizationId: string, id: string, deliveryId: string): Promise<DeliveryRecord> {
    const webhook = await this.get(organizationId, id)
    const existing = await this.deadDelivery(organizationId, id, deliveryId)
    if (!webhook.enabled) throw invalidState('the webhook is disabled: enable it before retrying')
    return this.replay(organizationId, id, existing)
  }

  /**
   * Sends every dead delivery created in `range` again, each with a fresh retry budget: the
   * way back from an outage longer than the retry schedule. How many went.
   */
  async retryDeadDeliveries(
    organizationId: string,
    id: string,
    range: ReplayRange,
  ): Promise<{ retried: number }> {
    const webhook = await this.get(organizationId, id)
    if (!webhook.enabled) throw invalidState('the webhook is disabled: enable it before retrying')
    const { replayed } = await this.replayDead(organizationId, id, range)
    return { retried: replayed }
  }

  /**
   * `retryDeadDeliveries` for a session's own webhooks, each sent as the session's webhook
   * at its URL is now; those whose URL is no longer in the config are skipped.
   */
  async retrySessionDeadDeliveries(
    organizationId: string,
    session: { id: string; webhooks: readonly SessionWebhookConfig[] },
    range: ReplayRange,
  ): Promise<{ retried: number; skipped: number }> {
    const targets = new Map(
      session.webhooks.map((webhook) => [
        sessionEndpointKey(session.id, webhook.url),
        sessionWebhookTarget(webhook),
      ]),
    )
    const { replayed, skipped } = await this.replayDead(
      organizationId,
      { sessionId: session.id },
      range,
      targets,
    )
    return { retried: replayed, skipped }
  }

  /** The deliveries of a session's own webhooks (its config's; they have no webhook id), newest first. */
  async listSessionDeliveries(
    organizationId: string,
    sessionId: string,
    query: DeliveryListQuery,
  ): Promise<DeliveryPage> {
    return this.deliveries.listByWebhook(organizationId, { sessionId }, query)
  }

  async getSessionDelivery(
    organizationId: string,
    sessionId: string,
    deliveryId: string,
  ): Promise<DeliveryDetail> {
    return this.detail(organizationId, { sessionId }, deliveryId)
  }

  /**
   * Sends a dead delivery of a session webhook again, with a fresh retry budget, as the
   * session's webhook at that URL is now (its headers, key and retries: the copy taken at
   * enqueue may hold a rotated token) — if there still is one: one taken out of the config
   * is not sent to.
   */
  async retrySessionDelivery(
    organizationId: string,
    session: { id: string; webhooks: readonly SessionWebhookConfig[] },
    deliveryId: string,
  ): Promise<DeliveryRecord> {
    const owner = { sessionId: session.id }
    const existing = await this.deadDelivery(organizationId, owner, deliveryId)
    const webhook = session.webhooks.find(
      (candidate) => sessionEndpointKey(session.id, candidate.url) === existing.endpointKey,
    )
    if (!webhook) throw invalidState("the session's config no longer has a webhook at this delivery's URL")
    return this.replay(organizationId, owner, existing, sessionWebhookTarget(webhook))
  }

  private async detail(
    organizationId: string,
    owner: DeliveryOwner,
    deliveryId: string,
  ): Promise<DeliveryDetail> {
    const delivery = await this.deliveries.getById(organizationId, owner, deliveryId)
    if (!delivery) throw notFound('delivery')
    return {
      delivery,
      body: (await this.deliveries.getBody(deliveryId)) ?? null,
      attempts: await this.deliveries.listAttempts(deliveryId),
    }
  }

  private async deadDelivery(organizationId: string, owner: DeliveryOwner, deliveryId: string) {
    const existing = await this.deliveries.getById(organizationId, owner, deliveryId)
    if (!existing) throw notFound('delivery')
    if (existing.status !== 'dead') {
      throw invalidState(`only a dead delivery can be retried; this one is ${existing.status}`)
    }
    return existing
  }

  /**
   * Walks the owner's log from `since` in stretches, a turn of the event loop between, and
   * sends again what is dead and was created in the range — a session webhook's as `targets`
   * has its endpoint now, skipped when it is not there any more. The worker is woken after
   * each stretch that made deliveries due.
   */
  private async replayDead(
    organizationId: string,
    owner: DeliveryOwner,
    { since, until }: ReplayRange,
    targets?: ReadonlyMap<string, WebhookTarget>,
  ): Promise<{ replayed: number; skipped: number }> {
    const total = { replayed: 0, skipped: 0 }
    // seq is an enqueue time in µs, never below its row's created_at (outbox.ts): the walk
    // starts at `since`. It goes on to the end of the log even with `until`: seq runs ahead of
    // created_at after a burst, or a clock that stepped back, by as much as those lasted.
    const stretch = { from: since * 1000, limit: REPLAY_STEP_ROWS }
    let after: LogPosition | undefined
    for (;;) {
      const rows = await this.deliveries.logStretch(organizationId, owner, { ...stretch, after })
      const now = this.now()
      // Replayed together: the same target (a session webhook's, as its config has it now) and the same due time.
      const batches = new Map<string, { options: ReplayOptions; ids: string[] }>()
      const endpoints = new Set<string>()
      for (const row of rows) {
        if (row.status !== 'dead' || row.createdAt < since || (until !== undefined && row.createdAt >= until))
          continue
        const target = targets?.get(row.endpointKey)
        if (targets && !target) {
          total.skipped++
          continue
        }
        const dueAt = this.dueAt(row.endpointKey, now)
        const key = `${row.endpointKey}|${dueAt}`
        const batch = batches.get(key) ?? { options: { ...(target ? { target } : {}), dueAt }, ids: [] }
        batch.ids.push(row.id)
        batches.set(key, batch)
        endpoints.add(row.endpointKey)
      }
      let replayed = 0
      for (const { options, ids } of batches.values())
        replayed += await this.deliveries.replayMany(ids, now, options)
      total.replayed += replayed
      if (replayed > 0) this.onReplay([...endpoints])
      after = rows.at(-1)
      if (rows.length < REPLAY_STEP_ROWS) return total
      await yieldToEventLoop()
    }
  }

  private async replay(
    organizationId: string,
    owner: DeliveryOwner,
    existing: DeliveryRecord,
    target?: WebhookTarget,
  ) {
    const now = this.now()
    const replayed = await this.deliveries.replay(organizationId, owner, existing.id, now, {
      ...(target ? { target } : {}),
      dueAt: this.dueAt(existing.endpointKey, now),
    })
    if (!replayed) throw invalidState('the delivery changed meanwhile; look at it again')
    this.onReplay([replayed.endpointKey])
    return replayed
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

const dedupe = (values: readonly string[]): string[] => [...new Set(values)]
