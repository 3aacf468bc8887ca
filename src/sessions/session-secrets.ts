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
  webhooks: (Omit<SessionConfig['webhooks'][number], 'hmac' | 'customHeaders'> & {
    hmac: { keySet: boolean }
    customHeaders: { name: string; value?: string }[]
  })[]
}

/**
 * The config as the API shows it: secrets reduced to "set or not". `headerValues: false`
 * (a viewer key) also leaves out the values of the webhooks' custom headers, names kept:
 * they often hold a receiver's token, and only keys that may change the config need them.
 */
export function publicConfig(
  config: SessionConfig,
  options: { headerValues?: boolean } = {},
): PublicSessionConfig {
  const { proxy, webhooks, ...rest } = config
  const headers = (custom: SessionConfig['webhooks'][number]['customHeaders']) =>
    options.headerValues === false ? custom.map(({ name }) => ({ name })) : custom
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
    webhooks: webhooks.map(({ hmac, customHeaders, ...webhook }) => ({
      ...webhook,
      hmac: { keySet: Boolean(hmac) },
      customHeaders: headers(customHeaders),
    })),
  }
}
