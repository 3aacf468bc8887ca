import {
  type BinaryNode,
  encodeBigEndian,
  getBinaryNodeChild,
  getBinaryNodeChildBuffer,
  getBinaryNodeChildren,
  jidDecode,
} from '@whiskeysockets/baileys'
import { syncAnswer } from './app-state.ts'
import { IqFailure, type IqRouter } from './iq-router.ts'
import { LID_SERVER, type SandboxNetwork, type SimUser } from './network.ts'
import type { PreKeyBundle } from './signal-device.ts'

const readKeyId = (bytes: Uint8Array | undefined): number => (bytes ? Buffer.from(bytes).readUIntBE(0, 3) : 0)

/** A device's prekey bundle, handed out once per one-time prekey as the real server does. */
export function takeBundle(network: SandboxNetwork, jid: string): PreKeyBundle | undefined {
  const decoded = jidDecode(jid)
  if (!decoded) return undefined
  const user = network.findUser(jid)
  if (!user) return undefined
  const deviceId = decoded.device ?? 0
  if (deviceId === 0) return user.phone.takeBundle()
  const bundle = user.devices.get(deviceId)?.bundle
  if (!bundle) return undefined
  const preKey = bundle.preKeys.shift()
  return { ...bundle, preKeys: preKey ? [preKey] : [] }
}

function bundleNode(jid: string, bundle: PreKeyBundle | undefined): BinaryNode {
  if (!bundle) {
    return {
      tag: 'user',
      attrs: { jid },
      content: [{ tag: 'error', attrs: { code: '404', text: 'item-not-found' } }],
    }
  }
  const preKey = bundle.preKeys[0]
  const content: BinaryNode[] = [
    { tag: 'registration', attrs: {}, content: encodeBigEndian(bundle.registrationId) },
    { tag: 'type', attrs: {}, content: Buffer.from([5]) },
    { tag: 'identity', attrs: {}, content: bundle.identity },
    {
      tag: 'skey',
      attrs: {},
      content: [
        { tag: 'id', attrs: {}, content: encodeBigEndian(bundle.signedPreKey.keyId, 3) },
        { tag: 'value', attrs: {}, content: bundle.signedPreKey.public },
        { tag: 'signature', attrs: {}, content: bundle.signedPreKey.signature },
      ],
    },
  ]
  if (preKey) {
    content.push({
      tag: 'key',
      attrs: {},
      content: [
        { tag: 'id', attrs: {}, content: encodeBigEndian(preKey.keyId, 3) },
        { tag: 'value', attrs: {}, content: preKey.public },
      ],
    })
  }
  return { tag: 'user', attrs: { jid }, content }
}

function usyncUser(network: SandboxNetwork, requested: BinaryNode, protocols: string[]): BinaryNode {
  const jid = requested.attrs.jid
  // A phone-number lookup (contact protocol) names the number in a <contact> child instead.
  const contactQuery = getBinaryNodeChild(requested, 'contact')?.content
  const phoneQuery = contactQuery ? Buffer.from(contactQuery as Uint8Array).toString() : undefined
  const user: SimUser | undefined = jid
    ? network.findUser(jid)
    : phoneQuery
      ? network.findUser(phoneQuery)
      : undefined
  const server = jid ? jidDecode(jid)?.server : undefined
  const content: BinaryNode[] = []
  for (const protocol of protocols) {
    if (protocol === 'devices') {
      const devices = user ? user.reachableDeviceIds() : []
      content.push({
        tag: 'devices',
        attrs: {},
        content: [
          {
            tag: 'device-list',
            attrs: {},
            content: devices.map(
              (id): BinaryNode => ({
                tag: 'device',
                attrs: id === 0 ? { id: '0' } : { id: String(id), 'key-index': String(id) },
              }),
            ),
          },
        ],
      })
    } else if (protocol === 'lid') {
      if (user && server !== LID_SERVER) content.push({ tag: 'lid', attrs: { val: user.lidJid } })
    } else if (protocol === 'contact') {
      content.push({ tag: 'contact', attrs: { type: user ? 'in' : 'out' } })
    } else if (protocol === 'status') {
      content.push({
        tag: 'status',
        attrs: { t: '0' },
        content: Buffer.from(user ? 'Hey there! I am using WhatsApp.' : ''),
      })
    } else if (protocol === 'disappearing_mode') {
      content.push({ tag: 'disappearing_mode', attrs: { duration: '0', t: '0' } })
    }
  }
  const resultJid = jid ?? (user ? user.jid : `${phoneQuery ?? ''}@s.whatsapp.net`)
  return { tag: 'user', attrs: { jid: resultJid }, content }
}

/**
 * The iqs every client sends around login — prekeys, device lists, props, privacy, app
 * state — answered from the network's state.
 */
export function registerCoreIqs(router: IqRouter, network: SandboxNetwork): void {
  router
    .register('encrypt', 'get', 'count', ({ user, deviceId }) => {
      const bundle = user && deviceId !== undefined ? user.devices.get(deviceId)?.bundle : undefined
      return [{ tag: 'count', attrs: { value: String(bundle?.preKeys.length ?? 0) } }]
    })
    .register('encrypt', 'set', 'registration', ({ iq, user, deviceId }) => {
      const device = user && deviceId !== undefined ? user.devices.get(deviceId) : undefined
      if (!device) throw new IqFailure(401, 'not-authorized')
      const signed = getBinaryNodeChild(iq, 'skey')
      const registration = getBinaryNodeChildBuffer(iq, 'registration')
      const identity = getBinaryNodeChildBuffer(iq, 'identity')
      if (!signed || !registration || !identity) throw new IqFailure(400, 'bad-request')
      const uploaded = getBinaryNodeChildren(getBinaryNodeChild(iq, 'list'), 'key').map((key) => ({
        keyId: readKeyId(getBinaryNodeChildBuffer(key, 'id')),
        public: getBinaryNodeChildBuffer(key, 'value') ?? new Uint8Array(),
      }))
      // Uploads top the store up; keep prekeys the server has not handed out yet.
      const kept = device.bundle?.preKeys ?? []
      device.bundle = {
        registrationId: Buffer.from(registration).readUInt32BE(0),
        identity,
        signedPreKey: {
          keyId: readKeyId(getBinaryNodeChildBuffer(signed, 'id')),
          public: getBinaryNodeChildBuffer(signed, 'value') ?? new Uint8Array(),
          signature: getBinaryNodeChildBuffer(signed, 'signature') ?? new Uint8Array(),
        },
        preKeys: [...kept, ...uploaded],
      }
      return undefined
    })
    .register('encrypt', 'get', 'digest', () => [{ tag: 'digest', attrs: {} }])
    .register('md', 'set', 'remove-companion-device', ({ child, user }) => {
      // "Log out" on a linked device: the server forgets it, as the phone's list shows.
      const device = jidDecode(child?.attrs.jid ?? '')?.device
      if (user && device !== undefined && device > 0) user.devices.delete(device)
      return undefined
    })
    .register('encrypt', 'get', 'key', ({ child }) => [
      {
        tag: 'list',
        attrs: {},
        content: getBinaryNodeChildren(child, 'user').map((requested) => {
          const jid = requested.attrs.jid ?? ''
          return bundleNode(jid, takeBundle(network, jid))
        }),
      },
    ])
    .register('usync', 'get', 'usync', ({ child }) => {
      if (!child) throw new IqFailure(400, 'bad-request')
      const protocols = ((getBinaryNodeChild(child, 'query')?.content as BinaryNode[] | undefined) ?? []).map(
        (p) => p.tag,
      )
      const users = getBinaryNodeChildren(getBinaryNodeChild(child, 'list'), 'user')
      return [
        {
          tag: 'usync',
          attrs: {
            sid: child.attrs.sid ?? '',
            index: '0',
            last: 'true',
            mode: child.attrs.mode ?? 'query',
            context: child.attrs.context ?? 'interactive',
          },
          content: [{ tag: 'list', attrs: {}, content: users.map((u) => usyncUser(network, u, protocols)) }],
        },
      ]
    })
    .register('abt', 'get', 'props', () => [
      { tag: 'props', attrs: { protocol: '1', hash: 'sandbox' }, content: [] },
    ])
    .register('w', 'get', 'props', () => [{ tag: 'props', attrs: { hash: 'sandbox' }, content: [] }])
    .register('blocklist', 'get', '', () => [{ tag: 'list', attrs: {} }])
    .register('privacy', 'get', 'privacy', () => [
      {
        tag: 'privacy',
        attrs: {},
        content: ['last', 'online', 'profile', 'status', 'readreceipts', 'groupadd'].map((name) => ({
          tag: 'category',
          attrs: { name, value: 'all' },
        })),
      },
    ])
    // The account's app state (app-state.ts): every patch after the version the client has.
    .register('w:sync:app:state', 'set', 'sync', ({ child, user }) => syncAnswer(user?.appState, child))
}
