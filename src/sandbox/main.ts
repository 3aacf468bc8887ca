import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, LogController } from 'fastify'
import { z } from 'zod'
import { sandboxControlRoutes } from './control-api.ts'
import { envelope, sendControlError } from './control-errors.ts'
import { SandboxServer, type SandboxServerOptions } from './server.ts'

/** The standalone sandbox's environment; nothing else in it reads `process.env`. */
const port = (fallback: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a port number (0 picks a free one)')
    .transform(Number)
    .pipe(z.number().max(65_535, 'must be at most 65535'))
    .default(fallback)

const envSchema = z.object({
  /** both listeners; keep it loopback: the sandbox has no authentication */
  HOST: z.string().min(1, 'must not be empty').default('127.0.0.1'),
  SANDBOX_PORT: port(7100),
  SANDBOX_WS_PORT: port(7101),
  SANDBOX_SEED: z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().max(4_294_967_295, 'must fit in 32 bits'))
    .default(1),
})

export interface StandaloneSandboxOptions {
  /** loopback by default */
  host?: string
  /** control API port; 0 picks a free one */
  port?: number
  /** the port clients connect their WebSocket to; 0 picks a free one */
  wsPort?: number
  seed?: number
  /** pino level for the control API's own log (5xx only); silent by default */
  logLevel?: 'silent' | 'error' | 'warn' | 'info'
  /** anything else the SandboxServer takes (receipt delays, QR schedule, history, trace) */
  sandbox?: Omit<SandboxServerOptions, 'host' | 'port' | 'seed'>
}

export interface StandaloneSandbox {
  sandbox: SandboxServer
  app: FastifyInstance
  /** the control API's base URL, e.g. `http://127.0.0.1:7100` */
  controlUrl: string
  websocketUrl: string
  /** the Noise root public key clients must trust, base64 */
  rootPublicKey: string
  close(): Promise<void>
}

/** Starts the fake WhatsApp server and its control API, each on its own port. */
export async function startStandaloneSandbox(
  options: StandaloneSandboxOptions = {},
): Promise<StandaloneSandbox> {
  const host = options.host ?? '127.0.0.1'
  const sandbox = await new SandboxServer({
    ...options.sandbox,
    host,
    port: options.wsPort ?? 0,
    seed: options.seed ?? 1,
  }).listen()
  const app = Fastify({
    logger: { level: options.logLevel ?? 'silent' },
    // request lines carry phone numbers in their paths; the error handler logs 5xx alone
    logController: new LogController({ disableRequestLogging: true }),
    connectionTimeout: 10_000,
    // entering a pairing code waits up to ~11 s for the client
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
    forceCloseConnections: true,
  })
  // the plugin passes errors it does not own (bad JSON, bugs) up to here
  app.setErrorHandler(sendControlError)
  // Here, not in the plugin: mounted in the gateway, its routes answer a wrong method as the gateway's do (405).
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(envelope('not_found', `no route ${request.method} ${request.url.split('?')[0]}`, request.id)),
  )
  try {
    await app.register(sandboxControlRoutes, { sandbox })
    await app.listen({ host, port: options.port ?? 0 })
  } catch (error) {
    await app.close()
    await sandbox.close()
    throw error
  }
  const address = app.server.address() as AddressInfo
  const formatted = address.address.includes(':') ? `[${address.address}]` : address.address
  return {
    sandbox,
    app,
    controlUrl: `http://${formatted}:${address.port}`,
    websocketUrl: sandbox.websocketUrl,
    rootPublicKey: Buffer.from(sandbox.rootPublicKey).toString('base64'),
    async close() {
      await app.close()
      await sandbox.close()
    },
  }
}

function parseEnv(env: NodeJS.ProcessEnv): z.output<typeof envSchema> {
  const parsed = envSchema.safeParse(env)
  if (parsed.success) return parsed.data
  const problems = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`)
  console.error(`sandbox: invalid environment\n${problems.join('\n')}`)
  process.exit(1)
}

async function main(): Promise<void> {
  const env = parseEnv(process.env)
  const running = await startStandaloneSandbox({
    host: env.HOST,
    port: env.SANDBOX_PORT,
    wsPort: env.SANDBOX_WS_PORT,
    seed: env.SANDBOX_SEED,
    logLevel: 'warn',
  })
  console.log(
    [
      `sandbox control API  ${running.controlUrl}`,
      `client WebSocket     ${running.websocketUrl}`,
      `noise root key       ${running.rootPublicKey}`,
    ].join('\n'),
  )
  let closing = false
  const shutdown = (signal: NodeJS.Signals) => {
    // a second signal while closing means "now"
    if (closing) process.exit(1)
    closing = true
    console.log(`sandbox: ${signal}, closing`)
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`sandbox: close failed: ${error instanceof Error ? error.message : String(error)}`)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`sandbox: failed to start: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  })
}
