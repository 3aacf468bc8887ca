import type { Logger } from 'pino'
import { invalidState, notFound } from '../domain/errors.ts'
import { LINKING_STATUSES, type SessionStatus } from '../domain/session-status.ts'
import type { CloseInfo, EngineConnection, SandboxTarget, WhatsAppEngine } from '../engine/engine.ts'
import type { SecretBox } from '../security/secret-box.ts'
import { backoffDelay, decideOnClose } from './reconnect-policy.ts'
import type { SessionRecord, SessionStore } from './session.types.ts'

export interface SessionManagerOptions {
  store: SessionStore
  engine: WhatsAppEngine
  secretBox: SecretBox
  logger: Logger
  /** where sandbox sessions connect; undefined when no sandbox runs */
  sandboxTarget?: () => SandboxTarget | undefined
  backoff?: { initialMs: number; maxMs: number }
  keepAliveIntervalMs?: number
  connectTimeoutMs?: number
  /** how many sessions restoreAll starts at once */
  restoreConcurrency?: number
  onReconnect?: (session: SessionRecord) => void
  now?: () => number
}

/** Everything the manager holds for one session while it runs. */
interface Runtime {
  connection?: EngineConnection
  /** increments per connection; events of an older connection are ignored */
  generation: number
  qr?: { value: string; expiresAt: number }
  linkingStartedAt?: number
  linkedAt?: number
  attempt: number
  reconnectTimer?: NodeJS.Timeout
  recentConflicts: number[]
  recentBadSessions: number[]
  qrWaiters: ((qr: { value: string; expiresAt: number } | Error) => void)[]
}

/** Baileys shows 6 refs: the first for 60 s, the next five for 20 s each. */
const LINKING_WINDOW_MS = 60_000 + 5 * 20_000
const QR_WAIT_MS = 20_000

/**
 * Owns every session's connection. The stored desired state says whether a session should
 * run; the manager converges to it — connecting, reacting to each close code, reconnecting
 * with backoff — with one connection per session, every operation on a session under that
 * session's lock, and every status change stored (with its event) before anything else.
 */
export class SessionManager {
  private readonly runtimes = new Map<string, Runtime>()
  private readonly connectionListeners: ((session: SessionRecord, connection: EngineConnection) => void)[] =
    []
  private readonly locks = new Map<string, Promise<unknown>>()
  private readonly options: SessionManagerOptions
  private readonly now: () => number
  private shuttingDown = false

  constructor(options: SessionManagerOptions) {
    this.options = options
    this.now = options.now ?? Date.now
  }

  /** Starts every session whose desired state is running, from stored credentials. */
  async restoreAll(): Promise<number> {
    const sessions = await this.options.store.listDesiredRunning()
    const concurrency = this.options.restoreConcurrency ?? 10
    let next = 0
    const worker = async () => {
      while (next < sessions.length) {
        const session = sessions[next++]
        if (session) await this.withLock(session.id, () => this.connect(session.id, 'restored after restart'))
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, sessions.length) }, worker))
    return sessions.length
  }

  async start(id: string): Promise<SessionRecord> {
    return this.withLock(id, async () => {
      if (this.runtimes.get(id)?.connection) throw invalidState('the session is already started')
      await this.options.store.update(id, { desiredState: 'running' })
      return this.connect(id)
    })
  }

  async stop(id: string): Promise<SessionRecord> {
    return this.withLock(id, async () => {
      const record = await this.record(id)
      if (
        record.desiredState === 'stopped' &&
        !this.runtimes.get(id)?.connection &&
        record.status === 'stopped'
      ) {
        throw invalidState('the session is already stopped')
      }
      await this.options.store.update(id, { desiredState: 'stopped' })
      this.disconnect(id)
      return this.options.store.transition(id, 'stopped', { reason: 'stopped on request' })
    })
  }

  async restart(id: string): Promise<SessionRecord> {
    return this.withLock(id, async () => {
      this.disconnect(id)
      await this.options.store.update(id, { desiredState: 'running' })
      return this.connect(id, 'restarted on request')
    })
  }

  /** Unlinks the device at WhatsApp (when connected) and forgets the credentials. */
  async logout(id: string): Promise<SessionRecord> {
    return this.withLock(id, async () => {
      const record = await this.record(id)
      const linked = await this.options.engine.hasCredentials(id)
      if (!linked) throw invalidState('the session is not linked to a WhatsApp account')
      const runtime = this.runtimes.get(id)
      const connection = runtime?.connection
      this.forget(id)
      if (connection && record.status === 'ready') {
        await connection
          .logout()
          .catch((err) => this.options.logger.warn({ err, sessionId: id }, 'logout at WhatsApp failed'))
      } else connection?.end()
      await this.options.engine.wipe(id)
      await this.options.store.update(id, { desiredState: 'stopped' })
      return this.loggedOut(id, 'logged out on request')
    })
  }

  /** Stops a session for good before it is deleted: unlinks it if it is connected. */
  async remove(id: string): Promise<void> {
    await this.withLock(id, async () => {
      const runtime = this.runtimes.get(id)
      const connection = runtime?.connection
      this.forget(id)
      const record = await this.options.store.get(id)
      if (connection && record?.status === 'ready') {
        await connection
          .logout()
          .catch((err) => this.options.logger.warn({ err, sessionId: id }, 'logout at WhatsApp failed'))
      } else connection?.end()
      await this.options.engine.wipe(id)
    })
    this.locks.delete(id)
  }

  /** The QR the client shows now. */
  currentQr(record: SessionRecord): { value: string; expiresAt: number } {
    const runtime = this.runtimes.get(record.id)
    if (record.status === 'ready' || record.status === 'authenticating') {
      throw invalidState('the session is already linked: there is no QR')
    }
    if (!runtime?.connection) throw invalidState('the session is not started: start it to get a QR')
    if (!runtime.qr || runtime.qr.expiresAt < this.now()) {
      throw invalidState('no QR yet: the session is still connecting, retry in a moment')
    }
    return runtime.qr
  }

  /**
   * An 8-character pairing code for `phoneNumber`, asked for at the moment Baileys allows
   * it (after the first QR). Starts the session when it is not running.
   */
  async requestPairingCode(id: string, phoneNumber: string): Promise<{ code: string; expiresAt: number }> {
    const record = await this.record(id)
    if (record.status === 'ready' || record.status === 'authenticating') {
      throw invalidState('the session is already linked: log it out to link another number')
    }
    if (!this.runtimes.get(id)?.connection) {
      await this.withLock(id, async () => {
        await this.options.store.update(id, { desiredState: 'running' })
        if (!this.runtimes.get(id)?.connection) await this.connect(id, 'started for a pairing code')
      })
    }
    const runtime = this.runtimes.get(id)
    if (!runtime?.connection) throw invalidState('the session could not be started')
    await this.firstQr(runtime)
    const connection = runtime.connection
    if (!connection) throw invalidState('the connection closed while waiting to link')
    const raw = await connection.requestPairingCode(phoneNumber)
    const code = `${raw.slice(0, 4)}-${raw.slice(4)}`
    const expiresAt = (runtime.linkingStartedAt ?? this.now()) + LINKING_WINDOW_MS
    const updated = await this.options.store.transition(id, 'pairing', { reason: 'pairing code requested' })
    await this.options.store.emit(updated, 'session.pairing_code', { code, expiresAt })
    return { code, expiresAt }
  }

  /** Closes every connection (server shutdown); desired states stay, so a restart restores them. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true
    const ids = [...this.runtimes.keys()]
    for (const id of ids) this.disconnect(id)
    await Promise.all(
      ids.map((id) =>
        this.options.store
          .transition(id, 'stopped', { reason: 'server shutting down' })
          .catch(() => undefined),
      ),
    )
  }

  isConnected(id: string): boolean {
    return Boolean(this.runtimes.get(id)?.connection)
  }

  /** The session's current connection, if it has one (callers check the status before sending). */
  connectionOf(id: string): EngineConnection | undefined {
    return this.runtimes.get(id)?.connection
  }

  /** Called with every new connection, before it can emit anything (messaging subscribes here). */
  onConnection(listener: (session: SessionRecord, connection: EngineConnection) => void): void {
    this.connectionListeners.push(listener)
  }

  // ---- internals (called under the session's lock) -------------------------------------

  private async connect(
    id: string,
    reason?: string,
    status: SessionStatus = 'starting',
  ): Promise<SessionRecord> {
    const record = await this.record(id)
    const runtime = this.runtime(id)
    clearTimeout(runtime.reconnectTimer)
    const generation = ++runtime.generation
    // A reconnect attempt keeps the error that caused it: it is cleared when the session is ready.
    const starting = await this.options.store.transition(id, status, {
      reason,
      ...(status === 'reconnecting' ? {} : { lastError: null }),
    })
    const sandbox = record.sandbox ? this.options.sandboxTarget?.() : undefined
    if (record.sandbox && !sandbox) {
      return this.fail(
        id,
        'this is a sandbox session, but the sandbox is not running (start wagate with SANDBOX=1)',
      )
    }
    const { proxy, client, store } = record.config
    const connection = await this.options.engine.connect({
      sessionId: id,
      proxy: proxy
        ? { ...proxy, password: proxy.password && this.options.secretBox.decrypt(proxy.password) }
        : undefined,
      client,
      fullHistory: store.fullSync,
      sandbox,
      keepAliveIntervalMs: this.options.keepAliveIntervalMs,
      connectTimeoutMs: this.options.connectTimeoutMs,
    })
    runtime.connection = connection
    for (const listener of this.connectionListeners) listener(record, connection)
    const current = () => runtime.generation === generation
    connection.events.on('qr', (qr) => {
      if (!current()) return
      runtime.linkingStartedAt ??= this.now()
      runtime.qr = qr
      for (const waiter of runtime.qrWaiters.splice(0)) waiter(qr)
      void this.guard(id, async () => {
        const latest = await this.record(id)
        const next = latest.status === 'pairing' ? latest : await this.options.store.transition(id, 'scan_qr')
        await this.options.store.emit(next, 'session.qr', qr)
      })
    })
    connection.events.on('linked', () => {
      if (!current()) return
      runtime.linkedAt = this.now()
      runtime.qr = undefined
      void this.guard(id, () =>
        this.options.store.transition(id, 'authenticating', { reason: 'linked by the phone' }),
      )
    })
    connection.events.on('open', (device) => {
      if (!current()) return
      runtime.attempt = 0
      runtime.qr = undefined
      runtime.linkingStartedAt = undefined
      // Logged in with the new credentials: the 515/401 race after a fresh link is over, and
      // a 401 from now on is a real logout, however soon after linking it comes.
      runtime.linkedAt = undefined
      const at = this.now()
      void this.guard(id, () =>
        this.options.store.transition(id, 'ready', {
          phone: device.phone,
          jid: device.jid,
          lid: device.lid ?? null,
          pushName: device.pushName ?? null,
          platform: device.platform ?? null,
          deviceId: device.deviceId,
          connectedAt: at,
          lastActiveAt: at,
          lastError: null,
        }),
      )
    })
    connection.events.on('close', (info) => {
      if (!current()) return
      void this.withLock(id, () => this.onClose(id, runtime, generation, info)).catch((err) =>
        this.options.logger.error({ err, sessionId: id }, 'handling a closed connection failed'),
      )
    })
    return starting
  }

  private async onClose(id: string, runtime: Runtime, generation: number, info: CloseInfo): Promise<void> {
    if (runtime.generation !== generation || this.shuttingDown) return
    runtime.connection = undefined
    runtime.qr = undefined
    for (const waiter of runtime.qrWaiters.splice(0)) waiter(new Error(`connection closed: ${info.message}`))
    const record = await this.options.store.get(id)
    if (!record || record.desiredState === 'stopped') return
    const now = this.now()
    const linked = await this.options.engine.hasCredentials(id)
    const decision = decideOnClose(info, {
      linked,
      linkedAt: runtime.linkedAt,
      recentConflicts: runtime.recentConflicts,
      recentBadSessions: runtime.recentBadSessions,
      now,
    })
    if (info.code === 440) runtime.recentConflicts.push(now)
    if (info.code === 500) runtime.recentBadSessions.push(now)
    this.options.logger.info({ sessionId: id, code: info.code, action: decision.action }, 'connection closed')
    switch (decision.action) {
      case 'reconnect-now': {
        // After a fresh link the session is still authenticating, not starting over.
        const justLinked = runtime.linkedAt !== undefined && now - runtime.linkedAt < 15_000
        await this.connect(id, decision.reason, justLinked ? 'authenticating' : 'reconnecting')
        return
      }
      case 'reconnect': {
        const delay = backoffDelay(
          runtime.attempt++,
          this.options.backoff ?? { initialMs: 1_000, maxMs: 60_000 },
        )
        const updated = await this.options.store.transition(id, 'reconnecting', {
          reason: decision.reason,
          lastError: decision.reason,
          reconnectCount: record.reconnectCount + 1,
        })
        this.options.onReconnect?.(updated)
        runtime.reconnectTimer = setTimeout(() => {
          void this.withLock(id, async () => {
            const latest = await this.options.store.get(id)
            if (latest?.desiredState === 'running' && !runtime.connection)
              await this.connect(id, `reconnect attempt ${runtime.attempt}`, 'reconnecting')
          }).catch((err) => this.options.logger.error({ err, sessionId: id }, 'reconnect failed'))
        }, delay)
        return
      }
      case 'logged-out':
        this.forget(id)
        await this.options.engine.wipe(id)
        await this.options.store.update(id, { desiredState: 'stopped' })
        await this.loggedOut(id, decision.reason)
        return
      case 'fail':
        this.forget(id)
        await this.options.store.update(id, { desiredState: 'stopped' })
        await this.fail(id, decision.reason)
        return
    }
  }

  private loggedOut(id: string, reason: string): Promise<SessionRecord> {
    return this.options.store.transition(id, 'logged_out', {
      reason,
      lastError: reason,
      phone: null,
      jid: null,
      lid: null,
      pushName: null,
      platform: null,
      deviceId: null,
    })
  }

  private fail(id: string, reason: string): Promise<SessionRecord> {
    return this.options.store.transition(id, 'failed', { reason, lastError: reason })
  }

  private firstQr(runtime: Runtime): Promise<{ value: string; expiresAt: number }> {
    if (runtime.qr) return Promise.resolve(runtime.qr)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(invalidState('WhatsApp did not offer a link in time; retry')),
        QR_WAIT_MS,
      )
      runtime.qrWaiters.push((outcome) => {
        clearTimeout(timer)
        if (outcome instanceof Error) reject(invalidState(outcome.message))
        else resolve(outcome)
      })
    })
  }

  private disconnect(id: string): void {
    const connection = this.runtimes.get(id)?.connection
    this.forget(id)
    connection?.end()
  }

  /** Drops the runtime so events of its connection are ignored from now on. */
  private forget(id: string): void {
    const runtime = this.runtimes.get(id)
    if (!runtime) return
    clearTimeout(runtime.reconnectTimer)
    runtime.generation += 1
    for (const waiter of runtime.qrWaiters.splice(0)) waiter(new Error('the session was stopped'))
    this.runtimes.delete(id)
  }

  private runtime(id: string): Runtime {
    let runtime = this.runtimes.get(id)
    if (!runtime) {
      runtime = { generation: 0, attempt: 0, recentConflicts: [], recentBadSessions: [], qrWaiters: [] }
      this.runtimes.set(id, runtime)
    }
    return runtime
  }

  private async record(id: string): Promise<SessionRecord> {
    const record = await this.options.store.get(id)
    if (!record) throw notFound('session')
    return record
  }

  /** Serializes operations on one session. */
  private withLock<T>(id: string, run: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve()
    const next = previous.catch(() => undefined).then(run)
    this.locks.set(id, next)
    return next
  }

  /** Runs an event reaction under the lock, logging rather than throwing. */
  private guard(id: string, run: () => Promise<unknown>): Promise<unknown> {
    return this.withLock(id, run).catch((err) =>
      this.options.logger.error({ err, sessionId: id }, 'session status update failed'),
    )
  }
}

export const isLinking = (status: SessionStatus): boolean => LINKING_STATUSES.has(status)
