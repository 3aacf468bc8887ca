import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MAX_RETRY_DELAY_MS, retryDelayMs, retryScheduleMs } from '../../src/webhooks/retry-policy.ts'
import type { RetrySettings } from '../../src/webhooks/webhook.types.ts'
import { type Harness, newSession, openHarness } from './harness.ts'
import { Receiver } from './receiver.ts'

const half = () => 0.5

describe('retry policy', () => {
  it('waits the same delay every time when constant', () => {
    const settings: RetrySettings = { policy: 'constant', delaySeconds: 3, attempts: 5 }
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => retryDelayMs(settings, n, half)),
      [3_000, 3_000, 3_000, 3_000],
    )
  })

  it('grows the delay by the base each time when linear', () => {
    const settings: RetrySettings = { policy: 'linear', delaySeconds: 3, attempts: 5 }
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => retryDelayMs(settings, n, half)),
      [3_000, 6_000, 9_000, 12_000],
    )
  })

  it('doubles the delay when exponential, within ±20% jitter, capped at an hour', () => {
    const settings: RetrySettings = { policy: 'exponential', delaySeconds: 2, attempts: 15 }
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => retryDelayMs(settings, n, half)),
      [2_000, 4_000, 8_000, 16_000, 32_000],
    )
    assert.equal(
      retryDelayMs(settings, 3, () => 0),
      6_400,
    )
    assert.equal(
      retryDelayMs(settings, 3, () => 0.999_999),
      9_600,
    )
    assert.equal(retryDelayMs(settings, 14, half), MAX_RETRY_DELAY_MS)
    assert.equal(
      retryDelayMs(settings, 1_000, () => 0.999),
      MAX_RETRY_DELAY_MS,
      'no overflow on huge counts',
    )
  })

  it('spans, at its longest, every wait between the tries', () => {
    assert.equal(retryScheduleMs({ policy: 'constant', delaySeconds: 3, attempts: 5 }), 12_000)
    assert.equal(retryScheduleMs({ policy: 'linear', delaySeconds: 3, attempts: 5 }), 30_000)
    assert.equal(retryScheduleMs({ policy: 'constant', delaySeconds: 3, attempts: 1 }), 0, 'one try, no wait')
    // The defaults: 2 s doubling, +20 % at most, 11 waits under the hour's cap, then 3 of an hour.
    const exponential = retryScheduleMs({ policy: 'exponential', delaySeconds: 2, attempts: 15 })
    assert.equal(exponential, Math.round(4_094_000 * 1.2) + 3 * MAX_RETRY_DELAY_MS)
  })
})

describe('retry schedule of a failing receiver', () => {
  let harness: Harness
  let receiver: Receiver

  before(async () => {
    harness = await openHarness()
    receiver = await Receiver.start()
    receiver.respond = () => ({ status: 503, body: 'x'.repeat(5_000) })
  })
  after(async () => {
    await harness.close()
    await receiver.stop()
  })

  /**
   * Creates a webhook with `retries`, emits one event, and runs the worker each time the
   * next try falls due (the clock jumps there: no sleeping). Returns the waits between tries.
   */
  async function schedule(retries: RetrySettings): Promise<number[]> {
    const webhook = await harness.createWebhook({ url: receiver.url(), retries })
    await harness.emit('message.received', { session: newSession() })
    const waits: number[] = []
    for (let attempt = 1; attempt <= retries.attempts; attempt++) {
      assert.equal(await harness.module.worker.runOnce(), 1, `attempt ${attempt} ran`)
      const [row] = (await harness.rows()).filter((r) => r.webhook_id === webhook.id)
      assert.ok(row)
      assert.equal(row.attempts, attempt)
      if (row.status === 'dead') break
      const wait = row.next_attempt_at - harness.clock.now()
      waits.push(wait)
      // Not a millisecond early.
      harness.clock.advance(wait - 1)
      assert.equal(await harness.module.worker.runOnce(), 0, 'nothing is tried before it is due')
      harness.clock.advance(1)
    }
    const [row] = (await harness.rows()).filter((r) => r.webhook_id === webhook.id)
    assert.equal(row?.status, 'dead', 'the delivery is dead once its attempts are spent')
    assert.equal(row?.last_status_code, 503)
    assert.equal(row?.last_error, 'HTTP 503')
    const attempts = await harness.attempts(row.id)
    assert.equal(attempts.length, retries.attempts, 'every attempt is recorded')
    for (const attempt of attempts) {
      assert.equal(attempt.statusCode, 503)
      assert.equal(attempt.response?.length, 1024, 'the response is kept, truncated to 1 KB')
    }
    await harness.module.service.delete(harness.organizationId, webhook.id)
    return waits
  }

  it('follows constant delays until the attempts are spent', async () => {
    assert.deepEqual(
      await schedule({ policy: 'constant', delaySeconds: 3, attempts: 4 }),
      [3_000, 3_000, 3_000],
    )
  })

  it('follows linear delays until the attempts are spent', async () => {
    assert.deepEqual(
      await schedule({ policy: 'linear', delaySeconds: 3, attempts: 4 }),
      [3_000, 6_000, 9_000],
    )
  })

  it('follows exponential delays until the attempts are spent', async () => {
    assert.deepEqual(
      await schedule({ policy: 'exponential', delaySeconds: 2, attempts: 5 }),
      [2_000, 4_000, 8_000, 16_000],
    )
  })

  it('uses the defaults (exponential, 2 s, 15 attempts) when none are given, capped at an hour', async () => {
    const webhook = await harness.createWebhook({ url: receiver.url() })
    assert.deepEqual(webhook.retries, { policy: 'exponential', delaySeconds: 2, attempts: 15 })
    await harness.module.service.delete(harness.organizationId, webhook.id)
    const waits = await schedule(webhook.retries)
    assert.equal(waits.length, 14)
    assert.deepEqual(waits.slice(0, 3), [2_000, 4_000, 8_000])
    assert.deepEqual(waits.slice(-3), [MAX_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS])
  })
})
