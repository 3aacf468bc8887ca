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
    corsOrigins: env.CORS_ORIGINS,
  }
}
