/**
 * Signing keys: each held by the one service that signs (docs/security.md).
 *
 *   AUTH_SIGNING_KEY      auth only          signs access tokens (ES256 JWT, `kid` in the header)
 *   AUTH_PUBLIC_KEYS      gateway            verifies access tokens (a JWKS; auth also serves its own at /.well-known/jwks.json)
 *   GATEWAY_SIGNING_KEY   gateway only       signs the identity it forwards to a subgraph (./identity.ts)
 *   GATEWAY_PUBLIC_KEYS   every subgraph     verifies that identity
 *   SERVICE_SIGNING_KEY   each subgraph      its own key for read-through calls to peers (./peers.ts); kid `<service>:<id>`
 *   SERVICE_PUBLIC_KEYS   every subgraph     the peers' public keys: a peer call is a service principal, not a user
 *
 * A private key is one JWK (JSON, EC P-256, with `kid`); public keys are a JWKS ({"keys":[…]}).
 * Rotation: add the new public key to the *_PUBLIC_KEYS of every verifier first, then give the
 * signer its new private key, then (after the longest token lifetime) drop the old public key.
 *
 * Development (NODE_ENV ≠ production) generates what is not configured on first use: kept in
 * DATA_DIR/keys/development-keys.json (0600), or only in this process's memory with DATA_DIR=memory;
 * the multi-process launcher generates a fresh set per stack and hands each child only its own
 * (keyEnvFor). Production never generates: a missing key is a ConfigError naming the variable.
 *
 * Why jsonwebtoken (already a dependency) and node:crypto rather than jose: every path here is
 * synchronous (signIdentity/verifyIdentity and the gateway's token check are sync APIs used in the
 * hot path and in many tests), jsonwebtoken signs and verifies ES256 with a `kid` from KeyObjects,
 * and node:crypto imports and exports JWKs itself; jose's API is async-only (WebCrypto), which would
 * have turned each of those call sites async for no gain in what is checked.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type JsonWebKey, type KeyObject } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type PlatformConfig } from '@crm/config';

export const KEY_ALGORITHM = 'ES256';

export interface SigningKey {
  kid: string;
  key: KeyObject;
  /** The public half, as a JWK (kid, alg, use included). */
  publicJwk: JsonWebKey;
}

export interface PublicKeys {
  get(kid: string): KeyObject | undefined;
  kids(): string[];
  /** As published: {"keys":[…]}. */
  jwks: { keys: JsonWebKey[] };
}

export type KeyVariable = 'AUTH_SIGNING_KEY' | 'AUTH_PUBLIC_KEYS' | 'GATEWAY_SIGNING_KEY' | 'GATEWAY_PUBLIC_KEYS' | 'SERVICE_SIGNING_KEY' | 'SERVICE_PUBLIC_KEYS';
export const KEY_VARIABLES: readonly KeyVariable[] = [
  'AUTH_SIGNING_KEY',
  'AUTH_PUBLIC_KEYS',
  'GATEWAY_SIGNING_KEY',
  'GATEWAY_PUBLIC_KEYS',
  'SERVICE_SIGNING_KEY',
  'SERVICE_PUBLIC_KEYS',
];

/** The subgraphs a development key set has a service key for (others get one on first use in memory). */
const DEV_SERVICES = ['auth', 'customer', 'opportunity', 'sales-activity', 'analytics'];

// ------------------------------------------------------------------ parsing (cached by value)

const signingCache = new Map<string, SigningKey>();
const publicCache = new Map<string, PublicKeys>();

export function parseSigningKey(value: string, variable = 'signing key'): SigningKey {
  const cached = signingCache.get(value);
  if (cached) return cached;
  let jwk: JsonWebKey & { kid?: unknown };
  try {
    jwk = JSON.parse(value) as typeof jwk;
  } catch {
    throw new ConfigError(`${variable} must be a private JWK (JSON) with a "kid"`);
  }
  if (typeof jwk.kid !== 'string' || jwk.kid === '') throw new ConfigError(`${variable} must have a "kid"`);
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string') throw new ConfigError(`${variable} must be an EC P-256 private JWK (${KEY_ALGORITHM})`);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d } as JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw new ConfigError(`${variable} is not a valid key: ${(err as Error).message}`);
  }
  const signing = { kid: jwk.kid, key, publicJwk: publicJwkOf(key, jwk.kid) };
  signingCache.set(value, signing);
  return signing;
}

export function parsePublicKeys(value: string, variable = 'public keys'): PublicKeys {
  const cached = publicCache.get(value);
  if (cached) return cached;
  let set: { keys?: unknown };
  try {
    set = JSON.parse(value) as typeof set;
  } catch {
    throw new ConfigError(`${variable} must be a JWKS (JSON: {"keys":[…]})`);
  }
  if (!Array.isArray(set.keys) || set.keys.length === 0) throw new ConfigError(`${variable} must be a JWKS with at least one key`);
  const byKid = new Map<string, KeyObject>();
  const published: JsonWebKey[] = [];
  for (const jwk of set.keys as (JsonWebKey & { kid?: unknown })[]) {
    if (typeof jwk.kid !== 'string' || jwk.kid === '') throw new ConfigError(`${variable}: every key needs a "kid"`);
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new ConfigError(`${variable}: key ${jwk.kid} must be EC P-256 (${KEY_ALGORITHM})`);
    if ('d' in jwk) throw new ConfigError(`${variable}: key ${jwk.kid} is a private key; give only public keys here`);
    try {
      byKid.set(jwk.kid, createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } as JsonWebKey, format: 'jwk' }));
    } catch (err) {
      throw new ConfigError(`${variable}: key ${jwk.kid} is not valid: ${(err as Error).message}`);
    }
    published.push({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid: jwk.kid, alg: KEY_ALGORITHM, use: 'sig' });
  }
  const keys: PublicKeys = { get: (kid) => byKid.get(kid), kids: () => [...byKid.keys()], jwks: { keys: published } };
  publicCache.set(value, keys);
  return keys;
}

function publicJwkOf(key: KeyObject, kid: string): JsonWebKey {
  const { kty, crv, x, y } = createPublicKey(key).export({ format: 'jwk' });
  return { kty, crv, x, y, kid, alg: KEY_ALGORITHM, use: 'sig' };
}

/** A new key pair: the private JWK (as the *_SIGNING_KEY variables hold it) and its public JWK. */
export function generateSigningKey(kid: string): { privateJwk: string; publicJwk: JsonWebKey } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateJwk: JSON.stringify({ ...jwk, kid, alg: KEY_ALGORITHM, use: 'sig' }), publicJwk: publicJwkOf(privateKey, kid) };
}

export const jwksOf = (...keys: JsonWebKey[]): string => JSON.stringify({ keys });

/** The service a service key speaks for: the part of its kid before ':'. */
export const serviceOfKid = (kid: string): string => kid.split(':')[0] ?? '';

// ------------------------------------------------------------------ development key set

/** Every key of a stack, as variables: the shared ones plus <NAME>_SERVICE_KEY per subgraph. */
export type KeySet = Record<string, string>;

const stamp = () => randomBytes(4).toString('hex');
/** How an operator (or a generated set) names one subgraph's own key for the launcher and compose: <NAME>_SERVICE_KEY. */
export const serviceKeyVariable = (service: string) => `${service.toUpperCase().replace(/-/g, '_')}_SERVICE_KEY`;

/** A fresh set for a whole stack (auth, gateway, one service key per subgraph). */
export function generateKeySet(services: readonly string[] = DEV_SERVICES): KeySet {
  const id = stamp();
  const auth = generateSigningKey(`auth-${id}`);
  const gateway = generateSigningKey(`gateway-${id}`);
  const set: KeySet = {
    AUTH_SIGNING_KEY: auth.privateJwk,
    AUTH_PUBLIC_KEYS: jwksOf(auth.publicJwk),
    GATEWAY_SIGNING_KEY: gateway.privateJwk,
    GATEWAY_PUBLIC_KEYS: jwksOf(gateway.publicJwk),
  };
  const publics: JsonWebKey[] = [];
  for (const name of services) {
    const k = generateSigningKey(`${name}:${id}`);
    set[serviceKeyVariable(name)] = k.privateJwk;
    publics.push(k.publicJwk);
  }
  set.SERVICE_PUBLIC_KEYS = jwksOf(...publics);
  return set;
}

let memorySet: KeySet | undefined;
const fileSets = new Map<string, KeySet>();

/**
 * This process's development key set: DATA_DIR/keys/development-keys.json (made on first start,
 * 0600, shared by every service started from that folder), or in memory with DATA_DIR=memory.
 * Refused in production.
 */
export function developmentKeySet(config: Pick<PlatformConfig, 'production' | 'DATA_DIR'>, variable = 'keys'): KeySet {
  if (config.production) throw missingInProduction(variable);
  if (config.DATA_DIR === 'memory') return (memorySet ??= generateKeySet());
  const dir = join(config.DATA_DIR, 'keys');
  const path = join(dir, 'development-keys.json');
  const known = fileSets.get(path);
  if (known) return known;
  const read = (): KeySet => {
    const set = JSON.parse(readFileSync(path, 'utf8')) as KeySet;
    fileSets.set(path, set);
    return set;
  };
  try {
    return read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`${path} is not a readable key set (delete it to make a new one): ${(err as Error).message}`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${stamp()}.tmp`;
  writeFileSync(tmp, JSON.stringify(generateKeySet()), { mode: 0o600 });
  try {
    // atomic, and the first writer wins: another service starting at the same moment may have made one
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  return read();
}

function missingInProduction(variable: string): ConfigError {
  return new ConfigError(`${variable} must be set in production (see docs/security.md: each service holds only its own private key)`);
}

/**
 * The key variables one service of a stack gets, and nothing else: `source` is the operator's
 * environment (production: every variable given, <NAME>_SERVICE_KEY per subgraph) or a generated set.
 */
export function keyEnvFor(service: string, source: Record<string, string | undefined>): Record<string, string> {
  const pick = (names: [target: string, from: string][]) => Object.fromEntries(names.filter(([, from]) => source[from]).map(([target, from]) => [target, source[from]!]));
  if (service === 'gateway')
    return pick([
      ['GATEWAY_SIGNING_KEY', 'GATEWAY_SIGNING_KEY'],
      ['AUTH_PUBLIC_KEYS', 'AUTH_PUBLIC_KEYS'],
    ]);
  return pick([
    ['GATEWAY_PUBLIC_KEYS', 'GATEWAY_PUBLIC_KEYS'],
    ['SERVICE_PUBLIC_KEYS', 'SERVICE_PUBLIC_KEYS'],
    ['SERVICE_SIGNING_KEY', serviceKeyVariable(service)],
    ...(service === 'auth' ? ([['AUTH_SIGNING_KEY', 'AUTH_SIGNING_KEY']] as [string, string][]) : []),
  ]);
}

/** Every variable that may carry a key (stripped from a child's inherited environment before its own are added). */
export function isKeyVariable(name: string): boolean {
  return (KEY_VARIABLES as readonly string[]).includes(name) || /_SIGNING_KEY$|_SERVICE_KEY$/.test(name) || name === 'JWT_SECRET' || name === 'INTERNAL_SECRET';
}

// ------------------------------------------------------------------ what a service uses

type KeyConfig = Pick<PlatformConfig, 'production' | 'DATA_DIR'> & Partial<Record<KeyVariable, string | undefined>>;

function value(config: KeyConfig, variable: KeyVariable, devName: string = variable): string {
  const configured = config[variable];
  if (configured) return configured;
  const dev = developmentKeySet(config, variable)[devName];
  if (!dev) throw new ConfigError(`${variable} is not set`);
  return dev;
}

export const authSigningKey = (config: KeyConfig): SigningKey => parseSigningKey(value(config, 'AUTH_SIGNING_KEY'), 'AUTH_SIGNING_KEY');
export const authPublicKeys = (config: KeyConfig): PublicKeys => parsePublicKeys(value(config, 'AUTH_PUBLIC_KEYS'), 'AUTH_PUBLIC_KEYS');
export const gatewaySigningKey = (config: KeyConfig): SigningKey => parseSigningKey(value(config, 'GATEWAY_SIGNING_KEY'), 'GATEWAY_SIGNING_KEY');
export const gatewayPublicKeys = (config: KeyConfig): PublicKeys => parsePublicKeys(value(config, 'GATEWAY_PUBLIC_KEYS'), 'GATEWAY_PUBLIC_KEYS');
export const servicePublicKeys = (config: KeyConfig): PublicKeys => parsePublicKeys(value(config, 'SERVICE_PUBLIC_KEYS'), 'SERVICE_PUBLIC_KEYS');

/** This subgraph's own key for peer calls (development: the set's key for `service`, made on first use in memory for a name the set lacks). */
export function serviceSigningKey(config: KeyConfig, service: string): SigningKey {
  if (config.SERVICE_SIGNING_KEY) return parseSigningKey(config.SERVICE_SIGNING_KEY, 'SERVICE_SIGNING_KEY');
  const set = developmentKeySet(config, 'SERVICE_SIGNING_KEY');
  let jwk = set[serviceKeyVariable(service)];
  if (!jwk) {
    const made = generateSigningKey(`${service}:${stamp()}`);
    jwk = made.privateJwk;
    set[serviceKeyVariable(service)] = jwk;
    const publics = (JSON.parse(set.SERVICE_PUBLIC_KEYS ?? '{"keys":[]}') as { keys: JsonWebKey[] }).keys;
    set.SERVICE_PUBLIC_KEYS = jwksOf(...publics, made.publicJwk);
  }
  return parseSigningKey(jwk, 'SERVICE_SIGNING_KEY');
}
