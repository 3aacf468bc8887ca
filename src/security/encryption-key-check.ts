import type { InstanceSettingsRepository } from '../store/instance-settings.repository.ts'
import type { SecretBox } from './secret-box.ts'

const SETTING = 'encryption_key_check'
/** What the check seals: anything will do, as long as it is always the same. */
const PLAINTEXT = 'wagate encryption key check v1'

/** A start refused because the encryption key is not the one the database was written with. */
export class EncryptionKeyMismatchError extends Error {
  override readonly name = 'EncryptionKeyMismatchError'
}

/**
 * Makes sure the gateway encrypts with the key its database was written with. WhatsApp
 * credentials, Signal keys and webhook secrets are stored sealed with it: under another key
 * (a lost `encryption.key`, a new DATA_DIR beside an existing DATABASE_URL, an
 * ENCRYPTION_KEY not carried over) every session failed to log in and every webhook
 * delivery died with "unable to authenticate data" — after the start had seemed to work
 * (black-box review, 2026-12-05). The first start seals a known value with its key (in a
 * database from before this check, once a stored secret has opened with it); every start
 * after opens it, and refuses to go on, in one line, when it cannot.
 */
export async function checkEncryptionKey(
  settings: InstanceSettingsRepository,
  secretBox: SecretBox,
  now: number,
): Promise<void> {
  let sealed = await settings.get(SETTING)
  if (sealed === undefined) {
    // A database from before the check (or a new one): what it sealed must open with this key
    // before this key is written down as the one.
    const sample = await settings.sealedSample()
    if (sample !== undefined && opened(secretBox, sample) === undefined) throw mismatch()
    sealed = await settings.setOnce(SETTING, secretBox.encrypt(PLAINTEXT), now)
  }
  if (opened(secretBox, sealed) !== PLAINTEXT) throw mismatch()
}

function opened(secretBox: SecretBox, sealed: string): string | undefined {
  try {
    return secretBox.decrypt(sealed)
  } catch {
    return undefined
  }
}

const mismatch = () =>
  new EncryptionKeyMismatchError(
    'the encryption key is not the one this database was written with: start with the same ENCRYPTION_KEY ' +
      '(or the same DATA_DIR/encryption.key) as before — with another, no stored credential or webhook secret can be read',
  )
