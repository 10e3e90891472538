/**
 * Signing keys (kit keys.ts): parsing refuses what is not an ES256 key with a kid (and a private key
 * where public keys belong); development keys are made once under DATA_DIR (0600) and reused;
 * production never makes one; each service is handed only its own; and a verifier holding two
 * public keys accepts either signer (a key roll), and no more once the old key is removed.
 */
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@crm/config';
import {
  developmentKeySet,
  generateKeySet,
  generateSigningKey,
  jwksOf,
  keyEnvFor,
  parsePublicKeys,
  parseSigningKey,
  signIdentity,
  signServiceCall,
  verifyIdentity,
} from '@crm/runtime';

const request = { subgraph: 'customer', method: 'POST', body: '{"query":"{ __typename }"}' };
const who = { userId: 'u1', role: 'SALES' as const, email: 'rep@test.local' };

test('parsing: a private JWK with a kid signs; public sets refuse private parts, other curves and missing kids', () => {
  const made = generateSigningKey('k1');
  expect(parseSigningKey(made.privateJwk).kid).toBe('k1');
  expect(parsePublicKeys(jwksOf(made.publicJwk)).kids()).toEqual(['k1']);
  expect(() => parseSigningKey('not json', 'AUTH_SIGNING_KEY')).toThrow(/AUTH_SIGNING_KEY must be a private JWK/);
  expect(() => parseSigningKey(JSON.stringify({ ...JSON.parse(made.privateJwk), kid: undefined }), 'X')).toThrow(/kid/);
  expect(() => parsePublicKeys(jwksOf(JSON.parse(made.privateJwk)), 'GATEWAY_PUBLIC_KEYS')).toThrow(/private key; give only public keys/);
  expect(() => parsePublicKeys(jwksOf({ ...made.publicJwk, crv: 'P-384' }), 'X')).toThrow(/P-256/);
  expect(() => parsePublicKeys('{"keys":[]}', 'X')).toThrow(ConfigError);
});

test('development keys are made once under DATA_DIR (0600) and reused; production never makes one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'crm-keys-'));
  const first = developmentKeySet({ production: false, DATA_DIR: dir });
  const path = join(dir, 'keys', 'development-keys.json');
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(first);
  expect(developmentKeySet({ production: false, DATA_DIR: dir })).toEqual(first);
  expect(() => developmentKeySet({ production: true, DATA_DIR: dir }, 'GATEWAY_SIGNING_KEY')).toThrow(/GATEWAY_SIGNING_KEY must be set in production/);
});

test('each service is handed only its own keys', () => {
  const set = generateKeySet(['auth', 'customer']);
  expect(Object.keys(keyEnvFor('gateway', set)).sort()).toEqual(['AUTH_PUBLIC_KEYS', 'GATEWAY_SIGNING_KEY']);
  expect(Object.keys(keyEnvFor('auth', set)).sort()).toEqual(['AUTH_SIGNING_KEY', 'GATEWAY_PUBLIC_KEYS', 'SERVICE_PUBLIC_KEYS', 'SERVICE_SIGNING_KEY']);
  const customer = keyEnvFor('customer', set);
  expect(Object.keys(customer).sort()).toEqual(['GATEWAY_PUBLIC_KEYS', 'SERVICE_PUBLIC_KEYS', 'SERVICE_SIGNING_KEY']);
  expect(parseSigningKey(customer.SERVICE_SIGNING_KEY!).kid).toMatch(/^customer:/);
  // auth's token key and its service key are two keys
  expect(parseSigningKey(keyEnvFor('auth', set).SERVICE_SIGNING_KEY!).kid).not.toBe(parseSigningKey(set.AUTH_SIGNING_KEY!).kid);
});

test('a roll: with two gateway public keys either signer verifies; after the old is removed, only the new', () => {
  const old = generateSigningKey('gw-1');
  const next = generateSigningKey('gw-2');
  const both = { gateway: parsePublicKeys(jwksOf(old.publicJwk, next.publicJwk)) };
  const retired = { gateway: parsePublicKeys(jwksOf(next.publicJwk)) };
  const verify = (keys: typeof both, headers: Record<string, string>) => verifyIdentity(headers['x-crm-identity'], headers['x-crm-signature'], keys, request);
  const byOld = signIdentity(who, parseSigningKey(old.privateJwk), request);
  const byNext = signIdentity(who, parseSigningKey(next.privateJwk), request);
  expect(verify(both, byOld)).toEqual({ ok: true, identity: who });
  expect(verify(both, byNext)).toEqual({ ok: true, identity: who });
  expect(verify(retired, byOld)).toEqual({ ok: false, reason: 'bad gateway signature' });
  expect(verify(retired, byNext)).toEqual({ ok: true, identity: who });
});

test('a service key is a service principal only: never a user, never another service, never verified as the gateway', () => {
  const set = generateKeySet(['customer', 'opportunity']);
  const keys = { gateway: parsePublicKeys(set.GATEWAY_PUBLIC_KEYS!), services: parsePublicKeys(set.SERVICE_PUBLIC_KEYS!) };
  const customerKey = parseSigningKey(set.CUSTOMER_SERVICE_KEY!);
  const call = signServiceCall(customerKey, request);
  expect(verifyIdentity(call['x-crm-identity'], call['x-crm-signature'], keys, request)).toEqual({ ok: true, identity: null, service: 'customer' });
  // the same key signing a user identity, as the gateway's format would carry it
  const asUser = signIdentity(who, customerKey, request);
  expect(verifyIdentity(asUser['x-crm-identity'], asUser['x-crm-signature'], keys, request)).toEqual({ ok: false, reason: 'bad service signature' });
  // without the peers' public keys, a service call is nobody
  expect(verifyIdentity(call['x-crm-identity'], call['x-crm-signature'], { gateway: keys.gateway }, request)).toEqual({ ok: false, reason: 'bad gateway signature' });
  // bound to the target and body like the gateway's
  expect(verifyIdentity(call['x-crm-identity'], call['x-crm-signature'], keys, { ...request, subgraph: 'auth' })).toEqual({
    ok: false,
    reason: 'gateway signature for another subgraph',
  });
  expect(verifyIdentity(call['x-crm-identity'], call['x-crm-signature'], keys, { ...request, body: '{}' })).toEqual({ ok: false, reason: 'gateway signature for another request' });
});
