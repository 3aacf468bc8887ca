import { createApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { EncryptionKeyMismatchError } from './security/encryption-key-check.ts'
import { GatewayInUseError } from './store/data-dir-lock.ts'

/** How long a shutdown may take before the process exits anyway. */
const CLOSE_TIMEOUT_MS = 30_000

/** Boot: parse the config (listing every problem), build the app, listen, restore sessions. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message)
      process.exit(1)
    }
    throw error
  }
  let app: Awaited<ReturnType<typeof createApp>> | undefined
  let closing = false
  /** Closes the gateway (sessions stop, stay linked) and exits; a second signal exits at once. */
  const shutdown = async (reason: string, exitCode: number) => {
    if (closing) process.exit(1)
    closing = true
    app?.http.log.info({ reason }, 'shutting down')
    // A close that hangs must not keep a gateway running that should be gone (no second signal may come).
    setTimeout(() => process.exit(1), CLOSE_TIMEOUT_MS).unref()
    await app?.close()
    process.exit(exitCode)
  }
  try {
    // Another gateway took the database: stop, as a signal would, but exit 1 (the app logged why).
    app = await createApp({ config, onFatal: () => void shutdown('database taken over', 1) })
  } catch (error) {
    if (error instanceof GatewayInUseError || error instanceof EncryptionKeyMismatchError) {
      console.error(error.message)
      process.exit(1)
    }
    throw error
  }
  const url = await app.listen()
  const { adminKey, adminKeyFile } = app.bootstrap
  console.log(`wagate listening on ${url} (API ${url}/api/v1, docs ${url}/api/docs)`)
  if (app.sandbox)
    console.log(`sandbox: create sessions with "sandbox": true; control API at ${url}/api/v1/sandbox`)
  if (adminKey) {
    // Printed once, on the start that created it; never logged.
    console.log(`\nadmin API key (shown once, also saved to ${adminKeyFile}):\n\n  ${adminKey}\n`)
  }
  const restored = await app.restoreSessions()
  if (restored) app.http.log.info({ restored }, 'sessions restored')
  process.on('SIGINT', () => void shutdown('SIGINT', 0))
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0))
}

await main()
