import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import pino, { type Logger } from 'pino'
import { ApiKeysService } from './accounts/api-keys.service.ts'
import { type BootstrapResult, bootstrap } from './accounts/bootstrap.ts'
import type { Config } from './config.ts'
import { newId } from './domain/ids.ts'
import { BaileysEngine } from './engine/baileys.engine.ts'
import type { SandboxTarget } from './engine/engine.ts'
import { EventBus } from './events/event-bus.ts'
import { EventRecorder } from './events/event-recorder.ts'
import { EventRetention } from './events/event-retention.ts'
import { buildHttpServer } from './http/server.ts'
import { ConversationsService } from './messages/conversations.service.ts'
import { GroupsService } from './messages/groups.service.ts'
import { MessageIngest } from './messages/ingest.service.ts'
import { MediaDownloader } from './messages/media-downloader.ts'
import { MediaFetcher } from './messages/media-fetcher.ts'
import { MessageActionsService } from './messages/message-actions.service.ts'
import { MessagesService } from './messages/messages.service.ts'
import { OutboundQueue } from './messages/outbound-queue.ts'
import { Pacer } from './messages/pacer.ts'
import { storedMessageContent } from './messages/stored-message-content.ts'
import { UpdatesIngest } from './messages/updates-ingest.ts'
import { Metrics } from './observability/metrics.ts'
import { EventStreamService } from './realtime/event-stream.service.ts'
import { SandboxServer } from './sandbox/server.ts'
import { checkEncryptionKey } from './security/encryption-key-check.ts'
import { loadOrCreateEncryptionKey, SecretBox } from './security/secret-box.ts'
import { SessionManager } from './sessions/session-manager.ts'
import { RepositorySessionStore } from './sessions/session-store.ts'
import { SessionsService } from './sessions/sessions.service.ts'
import { DataDirLock } from './store/data-dir-lock.ts'
import { DatabaseLock } from './store/database-lock.ts'
import { type Database, migrateToLatest, openDatabase } from './store/db.ts'
import { isPostgresUrl } from './store/dialect-sql.ts'
import { createRepositories } from './store/index.ts'
import { SsrfGuard } from './webhooks/ssrf-guard.ts'
import { createWebhookModule } from './webhooks/webhooks.module.ts'

export const VERSION = '0.1.0'

export interface AppOptions {
  config: Config
  logger?: Logger
  /** an already running sandbox to use instead of starting one (tests share one across restarts) */
  sandbox?: SandboxServer
  /**
   * The gateway can no longer run safely — another gateway took its Postgres database while
   * its lock was lost — and should stop (main.ts exits). Logged first.
   */
  onFatal?: (error: Error) => void
  /** timings tests shorten */
  tuning?: {
    keepAliveIntervalMs?: number
    connectTimeoutMs?: number
    backoff?: { initialMs: number; maxMs: number }
    /** the clock event retention (and the stream's resume cursors) are judged by */
    retentionClock?: () => number
    /** how long an HTTP connection may be quiet before it is closed (event streams are exempt) */
    connectionTimeoutMs?: number
    /** how often open event streams' keys are looked up in the store */
    streamKeyCheckIntervalMs?: number
    /** how often a lost database lock is asked for again */
    databaseLockRetakeMs?: number
  }
}

export interface App {
  http: FastifyInstance
  sessions: SessionsService
  manager: SessionManager
  apiKeys: ApiKeysService
  sandbox?: SandboxServer
  bootstrap: BootstrapResult
  /** prunes the event log in the background; tests run a pass by hand */
  eventRetention: EventRetention
  /** stores and publishes domain events, as the ingest does; tools and benchmarks feed it directly */
  recorder: EventRecorder
  /** every stored event as it is published; tools and benchmarks listen to it */
  bus: EventBus
  /** starts listening; resolves with the base URL */
  listen(): Promise<string>
  /** starts every session that should run, from stored credentials */
  restoreSessions(): Promise<number>
  close(): Promise<void>
}

/** The composition root: everything is built here and nowhere else. */
export async function createApp(options: AppOptions): Promise<App> {
  const { config } = options
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'wagate' } })
  // Owner only: the data directory holds the database, the encryption key and the admin key.
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
  const lock = DataDirLock.acquire(config.dataDir)
  let databaseLock: DatabaseLock | undefined
  let database: Database | undefined
  try {
    if (isPostgresUrl(config.databaseUrl))
      databaseLock = await DatabaseLock.acquire(config.databaseUrl, {
        logger,
        retakeEveryMs: options.tuning?.databaseLockRetakeMs,
        // Without an owner to stop it (tools, benchmarks), the lock logs and keeps asking.
        ...(options.onFatal
          ? {
              onTakenOver: (error: Error) => {
                logger.fatal(`${error.message}; stopping this one`)
                options.onFatal?.(error)
              },
            }
          : {}),
      })
    database = await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      backgroundCheckpoints: true,
      logger,
    })
    const app = await assemble(options, logger, database)
    const close = app.close
    // Released last, once nothing of this gateway writes to the directory or the database any more.
    const release = async () => {
      await databaseLock?.release()
      lock.release()
    }
    return { ...app, close: () => close().finally(release) }
  } catch (error) {
    // Not left open (with its checkpointer thread), or locked, by a start that failed halfway.
    await database?.close().catch(() => {})
    await databaseLock?.release()
    lock.release()
    throw error
  }
}

/** Everything on top of the open store. */
async function assemble(options: AppOptions, logger: Logger, database: Database): Promise<App> {
  const { config } = options
  await migrateToLatest(database)
  const repositories = createRepositories(database)
  const secretBox = new SecretBox(await loadOrCreateEncryptionKey(config.dataDir, config.encryptionKey))
  await checkEncryptionKey(repositories.instanceSettings, secretBox, Date.now())
  const bus = new EventBus((err) => logger.error({ err }, 'event listener failed'))

  const ownSandbox = !options.sandbox && config.sandbox
  // The embedded sandbox keeps its world in the data directory: linked sessions survive a restart.
  const sandbox =
    options.sandbox ??
    (config.sandbox
      ? await new SandboxServer({ seed: 1, statePath: join(config.dataDir, 'sandbox-state.json') }).listen()
      : undefined)
  const sandboxTarget = (): SandboxTarget | undefined =>
    sandbox && {
      websocketUrl: sandbox.websocketUrl,
      noiseRootPublicKey: sandbox.rootPublicKey,
      mediaCaPem: sandbox.media.caPem,
    }

  const engine = new BaileysEngine({
    authStore: repositories.authState,
    secretBox,
    logger,
    baileysLogLevel: config.baileysLogLevel,
    // Baileys asks for what we sent when a recipient retries decryption, and for poll votes.
    getMessage: (sessionId, key) => storedMessageContent(repositories, sessionId, key),
  })
  const webhooks = createWebhookModule({
    database,
    secretBox,
    newId,
    logger,
    allowPrivateTargets: config.webhookAllowPrivate,
    // Called on requests only, once the sessions service below exists.
    sessions: { find: (organizationId, idOrName) => sessions.find(organizationId, idOrName) },
  })
  // Events are published after their transaction commits: deliver now, not at the next poll.
  bus.subscribe((event) => webhooks.outbox.published(event))
  const recorder = new EventRecorder({
    events: repositories.events,
    bus,
    newId,
    database,
    outbox: webhooks.outbox,
  })
  const sessionStore = new RepositorySessionStore({ database, sessions: repositories.sessions, recorder })
  let metrics: Metrics | undefined
  const manager = new SessionManager({
    store: sessionStore,
    engine,
    secretBox,
    logger,
    sandboxTarget,
    keepAliveIntervalMs: options.tuning?.keepAliveIntervalMs,
    connectTimeoutMs: options.tuning?.connectTimeoutMs,
    backoff: options.tuning?.backoff,
    onReconnect: () => metrics?.reconnects.inc(),
  })
  metrics = new Metrics(() => repositories.sessions.countByStatus())

  // Messaging: what sessions receive is ingested per connection; what they send goes
  // through the paced, durable outbound queue, woken whenever a session becomes ready.
  const sessionById = (id: string) => repositories.sessions.getRecent(id)
  const mediaDownloader = new MediaDownloader({
    dataDir: config.dataDir,
    mediaFiles: repositories.mediaFiles,
    messages: repositories.messages,
    newId,
    logger,
  })
  const groups = new GroupsService({
    groups: repositories.groups,
    connection: (id) => manager.connectionOf(id),
  })
  const ingest = new MessageIngest({
    groups,
    database,
    messages: repositories.messages,
    chats: repositories.chats,
    contacts: repositories.contacts,
    recorder,
    media: mediaDownloader,
    newId,
    logger,
    session: sessionById,
  })
  const updates = new UpdatesIngest({
    database,
    chats: repositories.chats,
    contacts: repositories.contacts,
    groups: repositories.groups,
    recorder,
    logger,
    session: sessionById,
  })
  manager.onConnection((session, connection) => {
    ingest.attach(session.id, connection)
    updates.attach(session.id, connection)
  })
  const outbound = new OutboundQueue({
    database,
    messages: repositories.messages,
    chats: repositories.chats,
    recorder,
    logger,
    session: sessionById,
    connection: (id) => manager.connectionOf(id),
  })
  bus.subscribe((event) => {
    if (
      event.type === 'session.status' &&
      event.session &&
      (event.data as { status: string }).status === 'ready'
    ) {
      outbound.resumeAfterConnect(event.session.id)
    }
  })
  manager.onConnection((session, connection) => outbound.attach(session.id, connection))
  // Media URLs come from API callers: fetched through the SSRF guard, with its own switch.
  const mediaFetcher = new MediaFetcher({
    guard: new SsrfGuard({ allowPrivateTargets: config.mediaAllowPrivate }),
  })
  const messages = new MessagesService({
    messages: repositories.messages,
    idempotency: repositories.idempotency,
    queue: outbound,
    pacer: new Pacer(),
    media: mediaFetcher,
    dataDir: config.dataDir,
    newId,
  })
  const messageActions = new MessageActionsService({
    messages: repositories.messages,
    sender: messages,
    recorder,
    connection: (id) => manager.connectionOf(id),
  })
  const conversations = new ConversationsService({
    messages: repositories.messages,
    chats: repositories.chats,
    contacts: repositories.contacts,
    groups: repositories.groups,
    mediaFiles: repositories.mediaFiles,
    connection: (id) => manager.connectionOf(id),
  })
  const sessions = new SessionsService({
    repository: sessionStore,
    manager,
    secretBox,
    newId,
    webhookUrls: webhooks.guard,
  })
  const apiKeys = new ApiKeysService(repositories.apiKeys, newId, { sessions })
  const eventRetention = new EventRetention({
    database,
    events: repositories.events,
    deliveries: webhooks.deliveries,
    retentionHours: config.eventRetentionHours,
    now: options.tuning?.retentionClock,
    logger: logger.child({ component: 'event-retention' }),
  })
  const bootstrapped = await bootstrap({
    organizations: repositories.organizations,
    apiKeys,
    newId,
    dataDir: config.dataDir,
  })

  let restored = false
  const eventStream = new EventStreamService({
    events: repositories.events,
    bus,
    now: options.tuning?.retentionClock,
    horizon: () => eventRetention.horizon(),
    // A key revoked by another gateway process on the same database ends this one's streams too.
    confirmKey: (principal) => apiKeys.confirm(principal),
    keyCheckIntervalMs: options.tuning?.streamKeyCheckIntervalMs,
    logger,
  })
  apiKeys.onRevoked((keyId) => eventStream.revoked(keyId))
  const http = await buildHttpServer({
    logger,
    connectionTimeoutMs: options.tuning?.connectionTimeoutMs,
    version: VERSION,
    corsOrigins: config.corsOrigins,
    apiKeys,
    sessions,
    messages,
    conversations,
    groups,
    messageActions,
    eventStream,
    webhooks: webhooks.service,
    webhookDeliveries: webhooks.deliveryLog,
    events: repositories.events,
    metrics,
    sandbox,
    readiness: async () => {
      const store = await repositories.organizations
        .getFirst()
        .then(() => true)
        .catch(() => false)
      return { ready: store && restored, checks: { store, sessionsLoaded: restored } }
    },
  })

  // Sends what a previous run still owed, then whatever comes.
  webhooks.worker.start()
  eventRetention.start()

  return {
    http,
    sessions,
    manager,
    apiKeys,
    sandbox,
    bootstrap: bootstrapped,
    eventRetention,
    recorder,
    bus,
    listen: () => http.listen({ host: config.host, port: config.port }),
    restoreSessions: async () => {
      const count = await manager.restoreAll()
      restored = true
      return count
    },
    close: async () => {
      // Streams first: the server's close would wait for their clients to leave.
      eventStream.closeAll()
      await http.close()
      outbound.stop()
      await manager.shutdown()
      await ingest.idle()
      await engine.close()
      await recorder.idle()
      await mediaDownloader.idle()
      await eventRetention.stop()
      await webhooks.close()
      await mediaFetcher.close()
      await apiKeys.close()
      if (ownSandbox) await sandbox?.close()
      await database.close()
    },
  }
}
