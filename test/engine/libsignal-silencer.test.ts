import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { silenceLibsignal } from '../../src/engine/libsignal-silencer.ts'

/** Captures what reaches stdout and stderr while `run` executes. */
function captureOutput(run: () => void): string {
  const chunks: string[] = []
  const stdout = process.stdout.write.bind(process.stdout)
  const stderr = process.stderr.write.bind(process.stderr)
  const capture = (chunk: string | Uint8Array) => {
    chunks.push(String(chunk))
    return true
  }
  process.stdout.write = capture as typeof process.stdout.write
  process.stderr.write = capture as typeof process.stderr.write
  try {
    run()
  } finally {
    process.stdout.write = stdout
    process.stderr.write = stderr
  }
  return chunks.join('')
}

describe('libsignal console silencer', () => {
  it('drops libsignal session dumps, passing only the bare message to the sink', () => {
    const suppressed: string[] = []
    silenceLibsignal((message) => suppressed.push(message))
    const secret = { privKey: Buffer.from('00112233445566778899aabbccddeeff', 'hex') }
    const output = captureOutput(() => {
      console.info('Closing session:', secret)
      console.warn('Closing open session in favor of incoming prekey bundle')
      console.error(`Session error:Error: Bad MAC ${secret.privKey.toString('hex')}`)
    })
    assert.equal(output, '')
    assert.deepEqual(suppressed, [
      'Closing session',
      'Closing open session in favor of incoming prekey bundle',
      'Session error',
    ])
    assert.ok(!suppressed.join(' ').includes('00112233'))
  })

  it('lets every other console call through', () => {
    silenceLibsignal()
    const output = captureOutput(() => console.info('gateway listening'))
    assert.match(output, /gateway listening/)
  })
})
