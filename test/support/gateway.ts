import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LightMyRequestResponse } from 'fastify'
import { type App, type AppOptions, createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { SandboxServer } from '../../src/sandbox/server.ts'

export interface TestGateway {
  app: App
  sandbox: SandboxServer
  dataDir: string
  adminKey: string
  /** an HTTP request through the app, with the admin key unless `key` says otherwise (null: none) */
  request(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT',
    url: string,
    options?: { body?: unknown; key?: string | null; headers?: Record<string, string> },
  ): Promise<LightMyRequestResponse>
  /** closes this app and opens a new one on the same data directory and sandbox */
  restart(): Promise<void>
  close(): Promise<void>
}

/**
 * A gateway on a fresh SQLite file in a temp directory, talking to an in-process sandbox
 * that outlives app restarts (as a real WhatsApp would).
 */
export async function startTestGateway(
  options: {
    environment?: Record<string, string>
    sandbox?: SandboxServer
    /** merged over the shortened timings every test gateway has */
    tuning?: AppOptions['tuning']
  } = {},
): Promise<TestGateway> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wagate-test-'))
  const sandbox = options.sandbox ?? (await new SandboxServer({ seed: 5 }).listen())
  const open = () =>
    createApp({
      config: loadConfig({
        DATA_DIR: dataDir,
        PORT: '0',
        LOG_LEVEL: 'silent',
        // Tests' receivers and media servers listen on loopback.
        WEBHOOK_ALLOW_PRIVATE: '1',
        MEDIA_ALLOW_PRIVATE: '1',
        ...options.environment,
      }),
      sandbox,
      tuning: { keepAliveIntervalMs: 2_000, backoff: { initialMs: 50, maxMs: 500 }, ...options.tuning },
    })
  let app = await open()
  const adminKey = app.bootstrap.adminKey
  if (!adminKey) throw new Error('a fresh data directory must produce an admin key')
  const gateway: TestGateway = {
    app,
    sandbox,
    dataDir,
    adminKey,
    request: (method, url, { body, key, headers } = {}) =>
      gateway.app.http.inject({
        method,
        url,
        ...(body === undefined ? {} : { payload: body as object }),
        headers: { ...(key === null ? {} : { 'x-api-key': key ?? adminKey }), ...headers },
      }),
    restart: async () => {
      await gateway.app.close()
      app = await open()
      gateway.app = app
      await app.restoreSessions()
    },
    close: async () => {
      await gateway.app.close()
      if (!options.sandbox) await sandbox.close()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
  return gateway
}
