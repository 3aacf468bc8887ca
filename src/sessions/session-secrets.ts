import type { SessionConfig } from '../domain/session-config.ts'
import type { SecretBox } from '../security/secret-box.ts'

/**
 * Session config holds two secrets — the proxy password and webhook HMAC keys. They are
 * stored encrypted and never returned: responses say only that one is set. A PATCH that
 * leaves a secret out keeps the stored one.
 */
export function sealConfig(config: SessionConfig, box: SecretBox, previous?: SessionConfig): SessionConfig {
  const proxy = config.proxy
  const sealedProxy = proxy
    ? {
        ...proxy,
        password:
          proxy.password !== undefined
            ? box.encrypt(proxy.password)
            : previous?.proxy?.server === proxy.server
              ? previous.proxy.password
              : undefined,
      }
    : undefined
  return {
    ...config,
    proxy: sealedProxy,
    webhooks: config.webhooks.map((webhook) => {
      const kept = previous?.webhooks.find((w) => w.url === webhook.url)?.hmac
      return { ...webhook, hmac: webhook.hmac ? { key: box.encrypt(webhook.hmac.key) } : kept }
    }),
  }
}

export type PublicSessionConfig = Omit<SessionConfig, 'proxy' | 'webhooks'> & {
  proxy?: { server: string; username?: string; passwordSet: boolean }
  webhooks: (Omit<SessionConfig['webhooks'][number], 'hmac'> & { hmac: { keySet: boolean } })[]
}

export function publicConfig(config: SessionConfig): PublicSessionConfig {
  const { proxy, webhooks, ...rest } = config
  return {
    ...rest,
    ...(proxy
      ? {
          proxy: {
            server: proxy.server,
            ...(proxy.username ? { username: proxy.username } : {}),
            passwordSet: Boolean(proxy.password),
          },
        }
      : {}),
    webhooks: webhooks.map(({ hmac, ...webhook }) => ({ ...webhook, hmac: { keySet: Boolean(hmac) } })),
  }
}
