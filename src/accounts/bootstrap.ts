import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { IdGenerator } from '../domain/ids.ts'
import type { ApiKeysService } from './api-keys.service.ts'

export interface OrganizationStore {
  getFirst(): Promise<{ id: string; name: string } | undefined>
  create(row: { id: string; name: string; createdAt: number }): Promise<void>
}

export interface BootstrapResult {
  organizationId: string
  /** set only on the start that created it: the one time the key exists in plain text */
  adminKey?: string
  adminKeyFile?: string
}

/**
 * First start: a default organization, and — when no key exists at all — an admin key,
 * written to `$DATA_DIR/admin-api-key` (mode 0600) and handed back to be printed once.
 */
export async function bootstrap(deps: {
  organizations: OrganizationStore
  apiKeys: ApiKeysService
  newId: IdGenerator
  dataDir: string
  now?: () => number
}): Promise<BootstrapResult> {
  const now = deps.now ?? Date.now
  let organization = await deps.organizations.getFirst()
  if (!organization) {
    organization = { id: deps.newId('organization'), name: 'Default' }
    await deps.organizations.create({ ...organization, createdAt: now() })
  }
  if ((await deps.apiKeys.count()) > 0) return { organizationId: organization.id }
  const { key } = await deps.apiKeys.create(organization.id, { name: 'bootstrap admin', role: 'admin' })
  const adminKeyFile = join(deps.dataDir, 'admin-api-key')
  await writeFile(adminKeyFile, `${key}\n`, { mode: 0o600 })
  return { organizationId: organization.id, adminKey: key, adminKeyFile }
}
