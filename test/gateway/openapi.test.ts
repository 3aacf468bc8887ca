import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MEDIA_TYPES, MESSAGE_STATUSES, MESSAGE_TYPES } from '../../src/messages/message.types.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'

interface JsonSchema {
  $ref?: string
  type?: string | string[]
  description?: string
  properties?: Record<string, JsonSchema>
  additionalProperties?: boolean | JsonSchema
  items?: JsonSchema
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  allOf?: JsonSchema[]
  enum?: unknown[]
  required?: string[]
  pattern?: string
}

interface Operation {
  operationId?: string
  summary?: string
  description?: string
  tags?: string[]
  parameters?: { in: string; name: string; description?: string; required?: boolean; schema?: JsonSchema }[]
  requestBody?: unknown
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: JsonSchema }> }>
}

interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, JsonSchema> }
}

const API_PREFIX = '/api/v1'
/**
 * The sandbox control API is mounted only when the gateway runs its own sandbox: a test
 * harness for driving fake WhatsApp users, not part of the gateway's contract.
 */
const SANDBOX_PREFIX = '/api/v1/sandbox'

/**
 * Free-form objects in schemas this suite does not own, as `Component.path`: each is a
 * known gap for its owner to describe (then its entry goes). Anything else undescribed fails.
 */
const KNOWN_OPEN_OBJECTS = new Set([
  // src/http/schemas.ts `sessionView.config`: the session's settings, sessionConfigSchema's output
  'Session.config',
  // src/events/event-schemas.ts `messageEventSchema.details`: the type-specific content
  ...['received', 'sent', 'reaction', 'edited', 'deleted'].map(
    (type) => `Event.message.${type}.data.details`,
  ),
  'Event.poll.vote.data.details',
])

const isObject = (schema: JsonSchema) =>
  schema.type === 'object' || (Array.isArray(schema.type) && schema.type.includes('object'))

/**
 * An object that says nothing about its content: no properties, and any value under any
 * key (`z.object({}).passthrough()`, `z.record(z.string(), z.unknown())`) — unless a
 * description says what it holds. A map with typed values (`Record<string, string>`) is
 * documented by that type.
 */
const isUndocumentedOpenObject = (schema: JsonSchema) => {
  if (!isObject(schema) || Object.keys(schema.properties ?? {}).length > 0) return false
  const values = schema.additionalProperties
  const untypedValues =
    values === undefined ||
    values === true ||
    (typeof values === 'object' && Object.keys(values).length === 0)
  return untypedValues && !schema.description
}

/**
 * Every undocumented open object reachable from `schema`, named by where it sits: a path
 * from the response (`.items[].chat`), or from the component a `$ref` led to (`Chat.name`).
 */
function undocumentedOpenObjects(document: OpenApiDocument, schema: JsonSchema, at: string): string[] {
  const found: string[] = []
  const visit = (node: JsonSchema, path: string, components: readonly string[]) => {
    if (node.$ref) {
      const name = node.$ref.replace('#/components/schemas/', '')
      // a component already being walked (a recursive schema) was or will be reported there
      if (components.includes(name)) return
      const target = document.components.schemas[name]
      assert.ok(target, `${path}: $ref to a missing component ${name}`)
      visit(target, name, [...components, name])
      return
    }
    if (isUndocumentedOpenObject(node)) found.push(path)
    for (const [key, property] of Object.entries(node.properties ?? {}))
      visit(property, `${path}.${key}`, components)
    if (typeof node.additionalProperties === 'object')
      visit(node.additionalProperties, `${path}.*`, components)
    if (node.items) visit(node.items, `${path}[]`, components)
    for (const branch of [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])])
      visit(branch, path, components)
  }
  visit(schema, at, [])
  return found
}

const operationsOf = (document: OpenApiDocument) =>
  Object.entries(document.paths).flatMap(([path, operations]) =>
    Object.entries(operations).map(([method, operation]) => ({
      label: `${method.toUpperCase()} ${path}`,
      path,
      operation,
    })),
  )

/** A component's properties, with the schema of each (nullable ones unwrapped to their non-null branch). */
function propertiesOf(document: OpenApiDocument, name: string): Record<string, JsonSchema> {
  const component = document.components.schemas[name]
  assert.ok(component, `the component ${name} is published`)
  return component.properties ?? {}
}

const nonNull = (schema: JsonSchema | undefined): JsonSchema | undefined =>
  schema?.anyOf?.find((branch) => branch.type !== 'null') ?? schema

/** Every component name a `$ref` in `value` points to. */
const referencedComponents = (value: unknown): string[] =>
  [...JSON.stringify(value).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map((match) => match[1] ?? '')

/** The error envelope, as every documented error response must carry it. */
const ERROR_REF = '#/components/schemas/Error'

describe('the OpenAPI document', () => {
  let gateway: TestGateway
  let document: OpenApiDocument

  before(async () => {
    gateway = await startTestGateway()
    const response = await gateway.request('GET', '/api/openapi.json', { key: null })
    assert.equal(response.statusCode, 200)
    document = response.json<OpenApiDocument>()
  })
  after(async () => {
    await gateway.close()
  })

  it('should document what every 2xx JSON response under /api/v1 holds, with no undescribed open object', () => {
    const undocumented = operationsOf(document)
      .filter(({ path }) => path.startsWith(API_PREFIX) && !path.startsWith(SANDBOX_PREFIX))
      .flatMap(({ label, operation }) =>
        Object.entries(operation.responses ?? {})
          .filter(([status]) => status.startsWith('2'))
          .flatMap(([status, response]) => {
            const schema = response.content?.['application/json']?.schema
            return schema ? undocumentedOpenObjects(document, schema, `${label} ${status} body`) : []
          }),
      )
    const found = new Set(undocumented)
    assert.deepEqual(
      [...found].filter((path) => !KNOWN_OPEN_OBJECTS.has(path)),
      [],
      'describe these objects property by property',
    )
    assert.deepEqual(
      [...KNOWN_OPEN_OBJECTS].filter((path) => !found.has(path)),
      [],
      'these are documented now: take them off KNOWN_OPEN_OBJECTS',
    )
  })

  it('should check every response under /api/v1 it can reach, so that a pass means something', () => {
    const jsonBodies = operationsOf(document).filter(
      ({ path, operation }) =>
        path.startsWith(API_PREFIX) &&
        !path.startsWith(SANDBOX_PREFIX) &&
        Object.entries(operation.responses ?? {}).some(
          ([status, response]) => status.startsWith('2') && response.content?.['application/json']?.schema,
        ),
    )
    // sessions, API keys, messages, chats, contacts, groups, events and webhooks
    assert.ok(jsonBodies.length >= 40, `only ${jsonBodies.length} operations with a JSON body`)
  })

  it('should document a success response for every operation under /api/v1, the event stream’s as Server-Sent Events', () => {
    const missing = operationsOf(document)
      .filter(({ path }) => path.startsWith(API_PREFIX))
      .filter(
        ({ operation }) => !Object.keys(operation.responses ?? {}).some((status) => status.startsWith('2')),
      )
      .map(({ label }) => label)
    assert.deepEqual(missing, [])
    const stream = document.paths['/api/v1/events/stream']?.get
    assert.ok(stream?.responses?.['200']?.content?.['text/event-stream'], 'the SSE body is documented')
    assert.match(stream?.description ?? '', /WebSocket \(101\).*4001.*4002.*4008/s)
  })

  it('should say who may call each operation under /api/v1: its role, and whether a session-limited key may', () => {
    const silent = operationsOf(document)
      .filter(({ path }) => path.startsWith(API_PREFIX))
      .filter(
        ({ operation }) =>
          !/Needs a key with the (viewer|operator|admin) role/.test(operation.description ?? ''),
      )
      .map(({ label }) => label)
    assert.deepEqual(silent, [])
    const roleOf = (method: string, path: string) => document.paths[path]?.[method]?.description ?? ''
    assert.match(roleOf('get', '/api/v1/sessions'), /Needs a key with the viewer role\.$/)
    assert.match(roleOf('post', '/api/v1/sessions'), /the operator role, not limited to sessions\./)
    assert.match(roleOf('post', '/api/v1/webhooks'), /the admin role, not limited to sessions\./)
    assert.match(roleOf('post', '/api/v1/sandbox/reset'), /the admin role, not limited to sessions\./)
  })

  it('should give every operation a unique camelCase operationId, for SDK generators', () => {
    const operations = operationsOf(document)
    assert.deepEqual(
      operations.filter(({ operation }) => !operation.operationId).map(({ label }) => label),
      [],
      'operations without an operationId',
    )
    assert.deepEqual(
      operations
        .filter(({ operation }) => !/^[a-z][a-zA-Z0-9]*$/.test(operation.operationId ?? ''))
        .map(({ label, operation }) => `${label}: ${operation.operationId}`),
      [],
      'operationIds that are not camelCase',
    )
    const labelsById = new Map<string, string[]>()
    for (const { label, operation } of operations) {
      const id = operation.operationId ?? ''
      labelsById.set(id, [...(labelsById.get(id) ?? []), label])
    }
    assert.deepEqual(
      [...labelsById].filter(([, labels]) => labels.length > 1),
      [],
      'operationIds used more than once',
    )
    // Stable names: an SDK's methods are called after them.
    const idOf = (method: string, path: string) => document.paths[path]?.[method]?.operationId
    assert.equal(idOf('get', '/api/v1/sessions'), 'listSessions')
    assert.equal(idOf('post', '/api/v1/sessions'), 'createSession')
    assert.equal(idOf('get', '/api/v1/sessions/{id}'), 'getSession')
    assert.equal(idOf('post', '/api/v1/sessions/{id}/messages'), 'sendMessage')
    assert.equal(idOf('get', '/api/v1/webhooks/{id}/deliveries'), 'listWebhookDeliveries')
    assert.equal(idOf('post', '/api/v1/webhooks/{id}/deliveries/{deliveryId}/retry'), 'retryWebhookDelivery')
    assert.equal(idOf('get', '/api/v1/events/stream'), 'streamEvents')
    assert.equal(idOf('post', '/api/v1/sandbox/reset'), 'resetSandbox')
  })

  it('should say what every response means, none left as "Default Response"', () => {
    const undescribed = operationsOf(document).flatMap(({ label, operation }) =>
      Object.entries(operation.responses ?? {})
        .filter(
          ([, response]) => !response.description?.trim() || response.description === 'Default Response',
        )
        .map(([status]) => `${label} ${status}`),
    )
    assert.deepEqual(undescribed, [])
  })

  it('should document 401 and 403, with the error envelope, on every operation under /api/v1', () => {
    const missing = operationsOf(document)
      .filter(({ path }) => path.startsWith(API_PREFIX))
      .flatMap(({ label, operation }) =>
        ['401', '403']
          .filter(
            (status) =>
              operation.responses?.[status]?.content?.['application/json']?.schema?.$ref !== ERROR_REF,
          )
          .map((status) => `${label} ${status}`),
      )
    assert.deepEqual(missing, [])
    const unauthorized = document.paths['/api/v1/sessions']?.get?.responses?.['401']?.description
    assert.match(unauthorized ?? '', /no key, or an unknown/i)
  })

  it('should document every error response of the API with the error envelope, and 413 and 415 where a body is taken', () => {
    const api = operationsOf(document).filter(
      ({ path }) => path.startsWith(API_PREFIX) && !path.startsWith(SANDBOX_PREFIX),
    )
    const notEnveloped = api.flatMap(({ label, operation }) =>
      Object.entries(operation.responses ?? {})
        .filter(([status]) => /^[45]/.test(status))
        .filter(([, response]) => response.content?.['application/json']?.schema?.$ref !== ERROR_REF)
        .map(([status]) => `${label} ${status}`),
    )
    assert.deepEqual(notEnveloped, [])
    const bodyErrorsMissing = api
      .filter(({ operation }) => operation.requestBody)
      .flatMap(({ label, operation }) =>
        ['413', '415']
          .filter((status) => !operation.responses?.[status])
          .map((status) => `${label} ${status}`),
      )
    assert.deepEqual(bodyErrorsMissing, [])
  })

  it('should declare how the event stream resumes and how a browser opens it: Last-Event-ID and ?ticket=', () => {
    const parameters = document.paths['/api/v1/events/stream']?.get?.parameters ?? []
    const lastEventId = parameters.find(
      (parameter) => parameter.in === 'header' && parameter.name.toLowerCase() === 'last-event-id',
    )
    assert.ok(lastEventId, 'the Last-Event-ID header is declared')
    assert.equal(lastEventId.required ?? false, false)
    assert.match(lastEventId.description ?? '', /after/)
    const after = parameters.find((parameter) => parameter.in === 'query' && parameter.name === 'after')
    assert.equal(
      lastEventId.schema?.pattern ?? null,
      after?.schema?.pattern ?? null,
      'the same format as after',
    )
    const ticket = parameters.find((parameter) => parameter.in === 'query' && parameter.name === 'ticket')
    assert.ok(ticket, 'the ticket query parameter is declared')
    assert.match(ticket.description ?? '', /POST \/api\/v1\/events\/ticket/)
  })

  it('should document the sandbox controls with their real success codes and their 400 and 404', () => {
    const sandbox = (method: string, path: string) => document.paths[`${SANDBOX_PREFIX}${path}`]?.[method]
    for (const path of ['/reset', '/receipts', '/presence']) {
      const responses = sandbox('post', path)?.responses ?? {}
      assert.deepEqual(
        Object.keys(responses).filter((status) => status.startsWith('2')),
        ['204'],
        `POST ${path} answers 204`,
      )
      assert.equal(responses['204']?.content, undefined, `POST ${path}: no body`)
    }
    assert.ok(sandbox('post', '/accounts')?.responses?.['201'], 'POST /accounts answers 201')
    const withParameters = operationsOf(document).filter(
      ({ path, operation }) =>
        path.startsWith(SANDBOX_PREFIX) && operation.parameters?.some((parameter) => parameter.in === 'path'),
    )
    assert.ok(
      withParameters.length >= 10,
      `only ${withParameters.length} sandbox routes with path parameters`,
    )
    const missing = withParameters.flatMap(({ label, operation }) =>
      ['400', '404'].filter((status) => !operation.responses?.[status]).map((status) => `${label} ${status}`),
    )
    assert.deepEqual(missing, [])
    assert.ok(sandbox('post', '/messages')?.responses?.['400'], 'a bad message body is a 400')
  })

  it('should publish only components something refers to: no unused *Input twin of a response schema', () => {
    const components = document.components.schemas
    const reached = new Set<string>()
    const pending = referencedComponents({
      paths: document.paths,
      webhooks: (document as { webhooks?: unknown }).webhooks,
    })
    for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
      if (reached.has(name)) continue
      assert.ok(components[name], `$ref to a missing component ${name}`)
      reached.add(name)
      pending.push(...referencedComponents(components[name]))
    }
    assert.deepEqual(
      Object.keys(components).filter((name) => !reached.has(name)),
      [],
      'components nothing refers to',
    )
  })

  it('should give every documented operation a summary and a tag', () => {
    const missing = operationsOf(document)
      .filter(({ path }) => !path.startsWith(SANDBOX_PREFIX))
      .filter(({ operation }) => !operation.summary?.trim() || !operation.tags?.length)
      .map(({ label }) => label)
    assert.deepEqual(missing, [])
  })

  const messaging = /^\/api\/v1\/sessions\/\{id\}\/(messages|chats|contacts|numbers|presence|media|groups)/

  it('should describe every path parameter of the messaging routes', () => {
    const missing = operationsOf(document)
      .filter(({ path }) => messaging.test(path))
      .flatMap(({ label, operation }) =>
        (operation.parameters ?? [])
          .filter((parameter) => parameter.in === 'path' && !parameter.description?.trim())
          .map((parameter) => `${label} {${parameter.name}}`),
      )
    assert.deepEqual(missing, [])
  })

  it('should publish the Message component with its content, type and status', () => {
    const message = propertiesOf(document, 'Message')
    for (const name of [
      'id',
      'waId',
      'chatId',
      'fromMe',
      'sender',
      'timestamp',
      'type',
      'text',
      'media',
      'status',
    ])
      assert.ok(message[name], `Message.${name}`)
    assert.deepEqual(message.type?.enum, [...MESSAGE_TYPES])
    assert.deepEqual(nonNull(message.status)?.enum, [...MESSAGE_STATUSES])
    const media = nonNull(message.media)
    const mediaProperties = media?.$ref
      ? propertiesOf(document, media.$ref.replace('#/components/schemas/', ''))
      : media?.properties
    assert.deepEqual(mediaProperties?.type?.enum, [...MEDIA_TYPES])
  })

  it('should publish the Chat, Contact, ContactDetail and Group components with their main properties', () => {
    const expected: Record<string, string[]> = {
      Chat: ['id', 'lid', 'name', 'lastMessageAt', 'unreadCount', 'archived', 'pinned', 'mutedUntil'],
      Contact: ['id', 'lid', 'phone', 'name', 'pushName', 'isBusiness'],
      ContactDetail: ['id', 'phone', 'chat', 'groups'],
      Group: ['id', 'subject', 'description', 'owner', 'announce', 'restrict', 'participants'],
    }
    for (const [component, names] of Object.entries(expected)) {
      const properties = propertiesOf(document, component)
      for (const name of names) assert.ok(properties[name], `${component}.${name}`)
    }
    const participants = propertiesOf(document, 'Group').participants
    assert.ok(participants?.items, 'Group.participants is a list')
  })
})
