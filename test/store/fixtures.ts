import { after, before } from 'node:test'
import { newId } from '../../src/domain/ids.ts'
import { sessionConfigSchema } from '../../src/domain/session-config.ts'
import { type Database, migrateToLatest } from '../../src/store/db.ts'
import {
  createRepositories,
  type MessageRecord,
  type Repositories,
  type SessionRecord,
} from '../../src/store/index.ts'

/** What every dialect suite gets: an open, migrated database and its repositories. */
export interface StoreContext {
  database: Database
  repositories: Repositories
}

let clock = 1_700_000_000_000
/** Strictly increasing timestamps, so ordering assertions never depend on the wall clock. */
export const tick = (): number => ++clock

/**
 * Opens and migrates a database before the enclosing suite and closes it after. The
 * returned object is filled in by the `before` hook, so tests read it only while running.
 */
export function useStore(open: () => Promise<Database>): StoreContext {
  const context = {} as StoreContext
  before(async () => {
    const database = await open()
    await migrateToLatest(database)
    context.database = database
    context.repositories = createRepositories(database)
  })
  after(() => context.database?.close())
  return context
}

/** A new organization per test keeps tests independent inside one shared database. */
export async function createOrganization(context: StoreContext): Promise<string> {
  const id = newId('organization')
  await context.repositories.organizations.create({ id, name: 'Acme', createdAt: tick() })
  return id
}

export function sessionRecord(organizationId: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  const at = tick()
  return {
    id: newId('session'),
    organizationId,
    name: `session-${at}`,
    status: 'stopped',
    desiredState: 'stopped',
    sandbox: false,
    config: sessionConfigSchema.parse({ metadata: { team: 'ops' } }),
    statusHistory: [{ status: 'stopped', at }],
    lastError: null,
    phone: null,
    pushName: null,
    jid: null,
    lid: null,
    platform: null,
    deviceId: null,
    connectedAt: null,
    lastActiveAt: null,
    reconnectCount: 0,
    createdAt: at,
    updatedAt: at,
    ...overrides,
  }
}

export async function createSession(
  context: StoreContext,
  organizationId: string,
  overrides: Partial<SessionRecord> = {},
): Promise<SessionRecord> {
  const record = sessionRecord(organizationId, overrides)
  await context.repositories.sessions.create(record)
  return record
}

/** A text message from Ann in her chat, at the next `tick`; `overrides` make it anything else. */
export function messageRecord(sessionId: string, overrides: Partial<MessageRecord> = {}): MessageRecord {
  const at = tick()
  const ann = '15550001111@s.whatsapp.net'
  return {
    id: newId('message'),
    sessionId,
    waId: `3EB0${at}`,
    chatJid: ann,
    chatLid: null,
    fromMe: false,
    senderJid: ann,
    senderLid: null,
    pushName: 'Ann',
    timestamp: at,
    type: 'text',
    text: 'hello',
    media: null,
    quotedId: null,
    mentions: [],
    targetId: null,
    details: null,
    status: null,
    failureReason: null,
    raw: null,
    sendRequest: null,
    sendAfter: null,
    createdAt: at,
    updatedAt: at,
    ...overrides,
  }
}
