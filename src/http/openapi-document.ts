import type { z } from 'zod'
import { errorResponses } from './schemas.ts'

/* What the gateway adds to the OpenAPI document the routes' schemas make. */

/**
 * A sandbox control route's responses, with the gateway's 401 and 403: the sandbox has no keys
 * of its own. A 403 the route gives itself (a simulated member may not change the group) stays
 * documented beside the key's.
 */
export function withKeyErrors(response: unknown): Record<string, unknown> {
  const own = (response ?? {}) as Record<string, unknown>
  const keyErrors = errorResponses()
  const ownForbidden = own[403] as z.ZodType | undefined
  const forbidden = ownForbidden?.description
    ? keyErrors[403].describe(`${keyErrors[403].description}; or ${ownForbidden.description}`)
    : keyErrors[403]
  return { ...own, ...keyErrors, 403: forbidden }
}

/**
 * The document without the components nothing in it refers to. The zod provider publishes every
 * registered schema twice, as `Foo` (what responses hold) and `FooInput` (what requests may
 * send, where defaults make fields optional); the API takes none of them as input, so the
 * `*Input` twins stood unreferenced. Kept: whatever a path, a webhook or a kept component
 * refers to, `$ref` or discriminator mapping alike.
 */
export function withoutUnusedComponents<T extends object>(document: T): T {
  const { components } = document as { components?: { schemas?: Record<string, unknown> } }
  const schemas = components?.schemas
  if (!schemas) return document
  const referencedBy = (value: unknown) =>
    [...JSON.stringify(value).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map((match) => match[1] ?? '')
  const kept = new Set<string>()
  const pending = referencedBy({ ...document, components: { ...components, schemas: {} } })
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (kept.has(name) || !(name in schemas)) continue
    kept.add(name)
    pending.push(...referencedBy(schemas[name]))
  }
  const used = Object.fromEntries(Object.entries(schemas).filter(([name]) => kept.has(name)))
  return { ...document, components: { ...components, schemas: used } }
}
