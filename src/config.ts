import { z } from 'zod'

const booleanFlag = z
  .enum(['0', '1', 'true', 'false', ''])
  .default('')
  .transform((value) => value === '1' || value === 'true')

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

/** Every environment variable wagate reads, in one place: nothing else touches process.env. */
const environmentSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^(postgres(ql)?:\/\/|file:|sqlite:)/, 'must be a postgres:// URL (or leave it unset for SQLite)')
    .optional(),
  LOG_LEVEL: logLevel.default('info'),
  /** 32 bytes, base64 or hex; without it a key file is generated in DATA_DIR */
  ENCRYPTION_KEY: z
    .string()
    .refine(
      (value) => /^[0-9a-fA-F]{64}$/.test(value) || Buffer.from(value, 'base64').length === 32,
      'must be 32 bytes as 64 hex characters or base64',
    )
    .optional(),
  SANDBOX: booleanFlag,
  /** webhooks to loopback and private addresses (tests, home labs); refused by default (SSRF) */
  WEBHOOK_ALLOW_PRIVATE: booleanFlag,
  /**
   * media URLs given to the send API may point at loopback and private addresses; refused by
   * default (SSRF): separate from webhooks, because any API caller chooses these URLs
   */
  MEDIA_ALLOW_PRIVATE: booleanFlag,
  /** how long events (and their webhook delivery log) are kept; 0 keeps them forever */
  EVENT_RETENTION_HOURS: z.preprocess(
    // Set but empty (`EVENT_RETENTION_HOURS=` in an env file) means the default, not 0.
    (value) => (value === '' ? undefined : value),
    z.coerce
      .number()
      .int('must be a whole number of hours')
      .min(0)
      .max(87_600, 'at most 87600 (ten years); 0 keeps events forever')
      .default(168),
  ),
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((value) =>
      value
        .split(',')
        .map((origin) => origin.trim())
        .filter(Boolean),
    ),
  BAILEYS_LOG_LEVEL: logLevel.default('warn'),
})

export type Config = {
  port: number
  host: string
  dataDir: string
  databaseUrl?: string
  logLevel: z.infer<typeof logLevel>
  baileysLogLevel: z.infer<typeof logLevel>
  encryptionKey?: string
  sandbox: boolean
  webhookAllowPrivate: boolean
  mediaAllowPrivate: boolean
  /** 0: events are kept forever */
  eventRetentionHours: number
  corsOrigins: string[]
}

export class ConfigError extends Error {
  readonly problems: string[]

  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Parses the environment once at boot; lists every problem at once. */
export function loadConfig(environment: Record<string, string | undefined> = process.env): Config {
  const parsed = environmentSchema.safeParse(environment)
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`))
  }
  const env = parsed.data
  return {
    port: env.PORT,
    host: env.HOST,
    dataDir: env.DATA_DIR,
    databaseUrl: env.DATABASE_URL,
    logLevel: env.LOG_LEVEL,
    baileysLogLevel: env.BAILEYS_LOG_LEVEL,
    encryptionKey: env.ENCRYPTION_KEY,
    sandbox: env.SANDBOX,
    webhookAllowPrivate: env.WEBHOOK_ALLOW_PRIVATE,
    mediaAllowPrivate: env.MEDIA_ALLOW_PRIVATE,
    eventRetentionHours: env.EVENT_RETENTION_HOURS,
    corsOrigins: env.CORS_ORIGINS,
  }
}
