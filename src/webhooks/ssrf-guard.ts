import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { BlockList, isIP, type LookupFunction } from 'node:net'

/** Why an address may not be a webhook target. */
export type AddressClass =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'cgnat'
  | 'multicast'
  | 'reserved'

const RULES: [AddressClass, 'ipv4' | 'ipv6', string, number][] = [
  // Checked in order: the metadata address sits inside link-local and is named for itself.
  ['metadata', 'ipv4', '169.254.169.254', 32],
  ['unspecified', 'ipv4', '0.0.0.0', 8],
  ['loopback', 'ipv4', '127.0.0.0', 8],
  ['private', 'ipv4', '10.0.0.0', 8],
  ['private', 'ipv4', '172.16.0.0', 12],
  ['private', 'ipv4', '192.168.0.0', 16],
  ['link-local', 'ipv4', '169.254.0.0', 16],
  ['cgnat', 'ipv4', '100.64.0.0', 10],
  ['reserved', 'ipv4', '192.0.0.0', 24],
  ['reserved', 'ipv4', '198.18.0.0', 15],
  ['multicast', 'ipv4', '224.0.0.0', 4],
  ['reserved', 'ipv4', '240.0.0.0', 4],
  ['metadata', 'ipv6', 'fd00:ec2::254', 128],
  ['unspecified', 'ipv6', '::', 128],
  ['loopback', 'ipv6', '::1', 128],
  ['private', 'ipv6', 'fc00::', 7],
  ['link-local', 'ipv6', 'fe80::', 10],
  ['multicast', 'ipv6', 'ff00::', 8],
  // Tunnels to an IPv4 address carried in the address — 6to4 (its second and third groups,
  // which short forms like 2002:7f00::1 hide) and Teredo (inverted, in the last bits): no
  // target of ours.
  ['reserved', 'ipv6', '2002::', 16],
  ['reserved', 'ipv6', '2001::', 32],
]

const LISTS = RULES.map(([name, type, network, prefix]) => {
  const list = new BlockList()
  list.addSubnet(network, prefix, type)
  return { name, type, list }
})

/** IPv4 embedded in IPv6 (`::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) is judged as the IPv4 it is. */
function embeddedIpv4(address: string): string | null {
  const match = address.toLowerCase().match(/^(?:::ffff:|64:ff9b::)(?:0:)?(.+)$/)
  if (!match?.[1]) return null
  const tail = match[1]
  if (isIP(tail) === 4) return tail
  const hex = tail.match(/^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/)
  if (!hex?.[1] || !hex[2]) return null
  const high = Number.parseInt(hex[1], 16)
  const low = Number.parseInt(hex[2], 16)
  return [high >> 8, high & 255, low >> 8, low & 255].join('.')
}

/** The class that makes `address` off-limits, or null for a public address. */
export function classifyAddress(address: string): AddressClass | null {
  const bare = address.replace(/^\[|\]$/g, '')
  const family = isIP(bare)
  if (family === 0) return 'reserved'
  if (family === 6) {
    const v4 = embeddedIpv4(bare)
    if (v4) return classifyAddress(v4)
  }
  const type = family === 4 ? 'ipv4' : 'ipv6'
  for (const rule of LISTS) {
    if (rule.type === type && rule.list.check(bare, type)) return rule.name
  }
  return null
}

/** A refused target; the message is safe to show to the webhook's owner. */
export class TargetRefusedError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TargetRefusedError'
  }
}

export type HostResolver = (hostname: string) => Promise<LookupAddress[]>

const systemResolver: HostResolver = (hostname) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) =>
      error ? reject(error) : resolve(addresses),
    ),
  )

/**
 * How long `check` trusts what it found for a host, addresses or refusal. Before, every
 * attempt asked the system resolver again: a getaddrinfo call on libuv's four-thread pool
 * (shared with file I/O) and, glibc caching nothing, a DNS query. The HTTP client's socket
 * lookup still asks at every connection, so a cached answer is never what a socket uses.
 */
const CHECK_TTL_MS = 10_000
/** Hosts whose check is remembered: far more than there are webhook hosts in use. */
const CHECKED_HOSTS_KEPT = 1_000

export interface SsrfGuardOptions {
  /** the operator's opt-out (WEBHOOK_ALLOW_PRIVATE=1): every target is allowed */
  allowPrivateTargets: boolean
  /** tests point hostnames at chosen addresses */
  resolve?: HostResolver
  /** the clock of `check`'s memory (performance.now() by default); tests move it by hand */
  now?: () => number
}

/**
 * Keeps webhooks off the gateway's own network. A URL is checked when a webhook is saved
 * and again before every attempt (DNS can change between the two), and the HTTP client's
 * socket lookup is guarded too (`lookup`), so a rebinding between our check and the
 * connection still cannot reach a private address. Redirects are never followed.
 */
export class SsrfGuard {
  private readonly allowPrivate: boolean
  private readonly resolve: HostResolver
  private readonly now: () => number
  /** each host's check, while it runs and for CHECK_TTL_MS after: one lookup for all who ask meanwhile */
  private readonly checked = new Map<string, { at: number; outcome: Promise<void> }>()

  constructor(options: SsrfGuardOptions) {
    this.allowPrivate = options.allowPrivateTargets
    this.resolve = options.resolve ?? systemResolver
    this.now = options.now ?? (() => performance.now())
  }

  /**
   * Throws TargetRefusedError when `url` is not http(s) or any address of its host is
   * off-limits. What a host resolved to (or that it did not) is remembered for CHECK_TTL_MS;
   * `fresh` asks again (a URL being saved: its owner may just have fixed its DNS).
   */
  async check(url: string, options: { fresh?: boolean } = {}): Promise<void> {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new TargetRefusedError('the URL is not valid')
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TargetRefusedError('only http and https URLs can receive webhooks')
    }
    if (this.allowPrivate) return
    const host = parsed.hostname.replace(/^\[|\]$/g, '')
    if (isIP(host)) return refuseIfBlocked(host, host)
    const now = this.now()
    const known = this.checked.get(host)
    if (known && !options.fresh && now - known.at < CHECK_TTL_MS) return known.outcome
    const outcome = this.checkHost(host)
    // Rejections are handled by whoever awaits them; this copy only keeps the answer.
    outcome.catch(() => {})
    this.checked.delete(host)
    this.checked.set(host, { at: now, outcome })
    if (this.checked.size > CHECKED_HOSTS_KEPT)
      this.checked.delete(this.checked.keys().next().value as string)
    return outcome
  }

  private async checkHost(host: string): Promise<void> {
    let addresses: LookupAddress[]
    try {
      addresses = await this.resolve(host)
    } catch {
      throw new TargetRefusedError(`the host ${host} does not resolve`)
    }
    if (addresses.length === 0) throw new TargetRefusedError(`the host ${host} does not resolve`)
    for (const { address } of addresses) refuseIfBlocked(host, address)
  }

  /** A socket lookup for the HTTP client that refuses off-limits addresses; undefined when all are allowed. */
  lookup(): LookupFunction | undefined {
    if (this.allowPrivate) return undefined
    const resolve = this.resolve
    return (hostname, options, callback) => {
      resolve(hostname).then(
        (addresses) => {
          const wanted = options.family ? addresses.filter((a) => a.family === options.family) : addresses
          try {
            for (const { address } of addresses) refuseIfBlocked(hostname, address)
          } catch (error) {
            return callback(error as NodeJS.ErrnoException, '', 0)
          }
          const first = wanted[0]
          if (!first) {
            return callback(
              Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }),
              '',
              0,
            )
          }
          // Node's net.connect asks for every address when it races IPv4 and IPv6.
          if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, wanted)
          callback(null, first.address, first.family)
        },
        (error: NodeJS.ErrnoException) => callback(error, '', 0),
      )
    }
  }
}

function refuseIfBlocked(host: string, address: string): void {
  const blocked = classifyAddress(address)
  if (!blocked) return
  const where = host === address ? address : `${host} (${address})`
  throw new TargetRefusedError(`refused: ${where} is a ${blocked} address`)
}
