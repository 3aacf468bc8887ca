export const API_KEY_ROLES = ['viewer', 'operator', 'admin'] as const
export type ApiKeyRole = (typeof API_KEY_ROLES)[number]

const RANK: Record<ApiKeyRole, number> = { viewer: 0, operator: 1, admin: 2 }

/** viewer < operator < admin: viewers read, operators create/start/send, admins manage keys. */
export const roleAtLeast = (role: ApiKeyRole, required: ApiKeyRole): boolean => RANK[role] >= RANK[required]

export interface ApiKeyRecord {
  id: string
  organizationId: string
  name: string
  /** the visible start of the key, e.g. `wag_3kd9` — safe to show and log */
  prefix: string
  role: ApiKeyRole
  /** null: every session of the organization */
  sessionIds: string[] | null
  expiresAt: number | null
  lastUsedAt: number | null
  createdAt: number
  revokedAt: number | null
}

/** Who is calling, once a key checked out. */
export interface Principal {
  organizationId: string
  keyId: string
  role: ApiKeyRole
  sessionIds: string[] | null
  /** when the key stops working (epoch ms): streams opened with it end then */
  expiresAt: number | null
}

/** What the service needs from the store (the api-keys repository). */
export interface ApiKeyStore {
  create(record: ApiKeyRecord & { hash: string }): Promise<void>
  getByHash(hash: string): Promise<ApiKeyRecord | undefined>
  getById(organizationId: string, id: string): Promise<ApiKeyRecord | undefined>
  listByOrganization(organizationId: string): Promise<ApiKeyRecord[]>
  revoke(organizationId: string, id: string, at: number): Promise<boolean>
  count(): Promise<number>
  touchLastUsed(ids: string[], at: number): Promise<void>
}
