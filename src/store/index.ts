import { ApiKeysRepository } from './api-keys.repository.ts'
import { AuthStateRepository } from './auth-state.repository.ts'
import type { Database } from './db.ts'
import { EventsRepository } from './events.repository.ts'
import { OrganizationsRepository } from './organizations.repository.ts'
import { SessionsRepository } from './sessions.repository.ts'

export { type ApiKeyRecord, ApiKeysRepository } from './api-keys.repository.ts'
export { type AuthKeyEntry, AuthStateRepository } from './auth-state.repository.ts'
export { type Database, migrateToLatest, type OpenDatabaseOptions, openDatabase } from './db.ts'
export { isUniqueViolation } from './dialect-sql.ts'
export { type EventListQuery, type EventRecord, EventsRepository } from './events.repository.ts'
export { type OrganizationRecord, OrganizationsRepository } from './organizations.repository.ts'
export type { Executor, Tables } from './schema.ts'
export {
  type SessionListQuery,
  type SessionPage,
  type SessionRecord,
  type SessionRowPatch,
  SessionsRepository,
} from './sessions.repository.ts'

/** Every repository over one open database. */
export interface Repositories {
  organizations: OrganizationsRepository
  apiKeys: ApiKeysRepository
  sessions: SessionsRepository
  authState: AuthStateRepository
  events: EventsRepository
}

/** The composition root builds this once per open database. */
export function createRepositories(database: Database): Repositories {
  return {
    organizations: new OrganizationsRepository(database.db),
    apiKeys: new ApiKeysRepository(database.db),
    sessions: new SessionsRepository(database.db),
    authState: new AuthStateRepository(database.db),
    events: new EventsRepository(database.db),
  }
}
