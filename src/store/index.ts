import { ApiKeysRepository } from './api-keys.repository.ts'
import { AuthStateRepository } from './auth-state.repository.ts'
import { ChatsRepository } from './chats.repository.ts'
import { ContactsRepository } from './contacts.repository.ts'
import type { Database } from './db.ts'
import { EventsRepository } from './events.repository.ts'
import { GroupsRepository } from './groups.repository.ts'
import { IdempotencyRepository } from './idempotency.repository.ts'
import { InstanceSettingsRepository } from './instance-settings.repository.ts'
import { MediaFilesRepository } from './media-files.repository.ts'
import { MessagesRepository } from './messages.repository.ts'
import { OrganizationsRepository } from './organizations.repository.ts'
import { SessionsRepository } from './sessions.repository.ts'

export { type ApiKeyRecord, ApiKeysRepository } from './api-keys.repository.ts'
export { type AuthKeyEntry, AuthStateRepository } from './auth-state.repository.ts'
export {
  type ChatActivity,
  type ChatListQuery,
  type ChatPage,
  type ChatPatch,
  type ChatRecord,
  ChatsRepository,
  type ChatUpsert,
} from './chats.repository.ts'
export {
  type ContactPage,
  type ContactRecord,
  type ContactSearchQuery,
  ContactsRepository,
  type ContactUpsert,
} from './contacts.repository.ts'
export { type Database, migrateToLatest, type OpenDatabaseOptions, openDatabase } from './db.ts'
export { isUniqueViolation } from './dialect-sql.ts'
export { type EventListQuery, type EventRecord, EventsRepository } from './events.repository.ts'
export {
  type GroupListQuery,
  type GroupPage,
  type GroupParticipant,
  type GroupRecord,
  GroupsRepository,
} from './groups.repository.ts'
export {
  type IdempotencyRecord,
  IdempotencyRepository,
  type StoredResponse,
} from './idempotency.repository.ts'
export { type MediaFileRecord, MediaFilesRepository } from './media-files.repository.ts'
export {
  type MessagePatch,
  type MessageRecord,
  MessagesRepository,
  type TimelinePage,
  type TimelineQuery,
} from './messages.repository.ts'
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
  messages: MessagesRepository
  chats: ChatsRepository
  contacts: ContactsRepository
  groups: GroupsRepository
  idempotency: IdempotencyRepository
  mediaFiles: MediaFilesRepository
  instanceSettings: InstanceSettingsRepository
}

/** The composition root builds this once per open database. */
export function createRepositories(database: Database): Repositories {
  return {
    organizations: new OrganizationsRepository(database.db),
    apiKeys: new ApiKeysRepository(database.db),
    sessions: new SessionsRepository(database.db),
    authState: new AuthStateRepository(database.db),
    events: new EventsRepository(database.db),
    messages: new MessagesRepository(database.db),
    chats: new ChatsRepository(database.db),
    contacts: new ContactsRepository(database.db),
    groups: new GroupsRepository(database.db),
    idempotency: new IdempotencyRepository(database.db),
    mediaFiles: new MediaFilesRepository(database.db),
    instanceSettings: new InstanceSettingsRepository(database.db),
  }
}
export {
  type ClaimOptions,
  type DeliveryListQuery,
  type DeliveryOutcome,
  type DeliveryPage,
  type NewDelivery,
  WebhookDeliveriesRepository,
} from './webhook-deliveries.repository.ts'
export { type WebhookPatch, WebhooksRepository } from './webhooks.repository.ts'
