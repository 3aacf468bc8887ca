import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'

const lockModule = fileURLToPath(new URL('../../src/store/data-dir-lock.ts', import.meta.url))

describe('one gateway per data directory', () => {
  let dataDir: string
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'wagate-lock-'))
  })
  after(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })
  const config = () => loadConfig({ DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'silent' })

  it('refuses to start a second gateway on a data directory in use, and starts once it is free', async () => {
    const first = await createApp({ config: config() })
    try {
      await assert.rejects(createApp({ config: config() }), /another wagate is using the data directory/)
    } finally {
      await first.close()
    }
    const again = await createApp({ config: config() })
    await again.close()
  })

  it('sees the lock of another process, and not after that process is gone, however it ended', async () => {
    // Another process takes the lock and is killed: the operating system drops its lock.
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { DataDirLock } from ${JSON.stringify(lockModule)}; DataDirLock.acquire(${JSON.stringify(dataDir)}); console.log('held'); setInterval(() => {}, 1000)`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve())
      holder.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)))
    })
    await assert.rejects(createApp({ config: config() }), /another wagate is using the data directory/)
    const gone = new Promise((resolve) => holder.once('exit', resolve))
    holder.kill('SIGKILL')
    await gone
    const app = await createApp({ config: config() })
    await app.close()
  })
})
