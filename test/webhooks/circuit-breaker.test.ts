import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CircuitBreaker } from '../../src/webhooks/circuit-breaker.ts'

describe('circuit breaker', () => {
  const failTimes = (breaker: CircuitBreaker, times: number, at: number) => {
    for (let i = 0; i < times; i++) breaker.onFailure('e', at)
  }

  it('opens after consecutive failures and lets one probe through after the cooldown', () => {
    const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1_000 })
    failTimes(breaker, 2, 0)
    assert.equal(breaker.state('e', 0), 'closed')
    assert.deepEqual(breaker.status('e', 0), {
      state: 'closed',
      consecutiveFailures: 2,
      openSince: null,
      nextProbeAt: null,
    })
    breaker.onFailure('e', 0)
    assert.equal(breaker.state('e', 0), 'open')
    assert.deepEqual(breaker.status('e', 10), {
      state: 'open',
      consecutiveFailures: 3,
      openSince: 0,
      nextProbeAt: 1_000,
    })
    assert.equal(breaker.reopensAt('e'), 1_000)
    assert.equal(breaker.admit('e', 999), false)
    assert.deepEqual(breaker.blockedKeys(999), ['e'])
    assert.equal(breaker.admit('e', 1_000), true, 'the probe')
    assert.equal(breaker.admit('e', 1_000), false, 'only one')
    assert.equal(breaker.blocks('e', 1_000), true, 'while the probe is out')
    breaker.onSuccess('e')
    assert.equal(breaker.state('e', 1_000), 'closed')
    assert.equal(breaker.reopensAt('e'), undefined)
  })

  it('doubles the cooldown each time a probe fails, up to its longest, and starts over once closed', () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 1_000, maxCooldownMs: 5_000 })
    let at = 0
    breaker.onFailure('e', at)
    const cooldowns: number[] = []
    for (let probe = 0; probe < 5; probe++) {
      const reopens = breaker.reopensAt('e') as number
      cooldowns.push(reopens - at)
      at = reopens
      assert.equal(breaker.admit('e', at), true)
      breaker.onFailure('e', at)
    }
    assert.deepEqual(cooldowns, [1_000, 2_000, 4_000, 5_000, 5_000])
    breaker.onSuccess('e')
    breaker.onFailure('e', at)
    assert.equal(breaker.reopensAt('e'), at + 1_000)
  })

  it('stays as it is when a request sent before it opened fails while it cools down', () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 1_000 })
    breaker.onFailure('e', 0)
    failTimes(breaker, 10, 500)
    assert.equal(breaker.reopensAt('e'), 1_000, 'neither pushed back nor doubled')
  })
})
