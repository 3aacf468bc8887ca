import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { hasPrefix, newId } from '../../src/domain/ids.ts'

describe('ids', () => {
  it('are a prefix and 20 base-36 characters, all different', () => {
    const ids = new Set<string>()
    for (const kind of ['session', 'apiKey', 'event', 'delivery', 'message'] as const) {
      for (let i = 0; i < 1_000; i++) {
        const id = newId(kind)
        assert.match(id, /^[a-z]{3}_[0-9a-z]{20}$/)
        assert.ok(hasPrefix(id, kind))
        ids.add(id)
      }
    }
    assert.equal(ids.size, 5_000)
  })

  it('of events, deliveries and messages begin with their creation time, so later ones sort after', async () => {
    for (const kind of ['event', 'delivery', 'message'] as const) {
      const before = Date.now()
      const first = newId(kind)
      await new Promise((resolve) => setTimeout(resolve, 3))
      const second = newId(kind)
      const made = Number.parseInt(first.slice(4, 13), 36)
      assert.ok(made >= before && made <= Date.now(), `${first} carries its creation time`)
      assert.ok(first < second, `${first} sorts before ${second}`)
    }
  })

  it('of those kinds ascend strictly, even many in one millisecond', () => {
    const ids = Array.from({ length: 2_000 }, (_, i) => newId(i % 2 ? 'event' : 'delivery').slice(4))
    for (let i = 1; i < ids.length; i++) {
      assert.ok((ids[i - 1] ?? '') < (ids[i] ?? ''), `${ids[i - 1]} sorts before ${ids[i]}`)
    }
  })

  it('of other kinds do not reveal when they were made', () => {
    const a = newId('session')
    const b = newId('session')
    assert.notEqual(a.slice(4, 10), b.slice(4, 10))
  })
})
