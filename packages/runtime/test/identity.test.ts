/**
 * The signed identity a subgraph accepts (kit identity.ts), now made and checked with node:crypto
 * directly: still a standard compact ES256 JWS (jsonwebtoken verifies what we sign), and every
 * altered, re-signed, unsigned or expired header is refused with its reason.
 */
import jwt from 'jsonwebtoken';
import { generateSigningKey, jwksOf, parsePublicKeys, parseSigningKey, signIdentity, verifyIdentity, IDENTITY_HEADER, SIGNATURE_HEADER } from '@crm/runtime';

const made = generateSigningKey('gateway:test');
const signer = parseSigningKey(made.privateJwk);
const keys = { gateway: parsePublicKeys(jwksOf(made.publicJwk)) };
const request = { subgraph: 'customer', method: 'POST', body: '{"query":"{ __typename }"}' };
const who = { userId: 'u1', role: 'SALES' as const, email: 'rep@test.local' };
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const parts = (headers: Record<string, string>) => {
  const [head, payload] = headers[IDENTITY_HEADER]!.split('.');
  return { head: head!, payload: payload!, signature: headers[SIGNATURE_HEADER]! };
};

test('a signed identity is a standard ES256 JWS with the kid: jsonwebtoken verifies it, and so do we', () => {
  const signed = parts(signIdentity(who, signer, request));
  const claims = jwt.verify(`${signed.head}.${signed.payload}.${signed.signature}`, keys.gateway.get('gateway:test')!, { algorithms: ['ES256'] }) as jwt.JwtPayload;
  expect(claims).toMatchObject({ u: who, sg: 'customer', m: 'POST' });
  expect(JSON.parse(Buffer.from(signed.head, 'base64url').toString())).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'gateway:test' });
  expect(verifyIdentity(`${signed.head}.${signed.payload}`, signed.signature, keys, request)).toEqual({ ok: true, identity: who });
});

test('an altered payload, another algorithm, a missing or foreign signature and garbage are refused', () => {
  const signed = parts(signIdentity(who, signer, request));
  const claims = JSON.parse(Buffer.from(signed.payload, 'base64url').toString()) as Record<string, unknown>;
  // the role raised, the signature kept
  const raised = b64({ ...claims, u: { ...who, role: 'ADMIN' } });
  expect(verifyIdentity(`${signed.head}.${raised}`, signed.signature, keys, request)).toEqual({ ok: false, reason: 'bad gateway signature' });
  // alg none / HS256 with the public key as the secret
  const none = b64({ alg: 'none', typ: 'JWT', kid: 'gateway:test' });
  expect(verifyIdentity(`${none}.${signed.payload}`, 'x', keys, request)).toEqual({ ok: false, reason: 'bad gateway signature' });
  const hs = jwt.sign(claims, JSON.stringify(made.publicJwk), { algorithm: 'HS256', keyid: 'gateway:test', noTimestamp: true });
  const [hsHead, hsPayload, hsSig] = hs.split('.');
  expect(verifyIdentity(`${hsHead}.${hsPayload}`, hsSig, keys, request)).toEqual({ ok: false, reason: 'bad gateway signature' });
  // another key with the same kid
  const other = parseSigningKey(generateSigningKey('gateway:test').privateJwk);
  const forged = parts(signIdentity({ ...who, role: 'ADMIN' }, other, request));
  expect(verifyIdentity(`${forged.head}.${forged.payload}`, forged.signature, keys, request)).toEqual({ ok: false, reason: 'bad gateway signature' });
  // missing, unknown kid, not a JWS
  expect(verifyIdentity(`${signed.head}.${signed.payload}`, undefined, keys, request)).toEqual({ ok: false, reason: 'missing gateway signature' });
  const unknownKid = b64({ alg: 'ES256', typ: 'JWT', kid: 'nobody' });
  expect(verifyIdentity(`${unknownKid}.${signed.payload}`, signed.signature, keys, request)).toEqual({ ok: false, reason: 'bad gateway signature' });
  for (const garbage of ['x', 'x.y', '..', `${signed.head}.${signed.payload}.extra`, `${b64('text')}.${signed.payload}`]) {
    expect(verifyIdentity(garbage, signed.signature, keys, request)).toEqual({ ok: false, reason: 'malformed identity' });
  }
  // a signature of the wrong length
  expect(verifyIdentity(`${signed.head}.${signed.payload}`, signed.signature.slice(4), keys, request)).toEqual({ ok: false, reason: 'bad gateway signature' });
});

test('expired, future, other subgraph or body: refused with the reason', () => {
  const now = Date.now();
  const old = parts(signIdentity(who, signer, request, now - 60_000));
  expect(verifyIdentity(`${old.head}.${old.payload}`, old.signature, keys, request, now)).toEqual({ ok: false, reason: 'stale gateway signature' });
  const future = parts(signIdentity(who, signer, request, now + 60_000));
  expect(verifyIdentity(`${future.head}.${future.payload}`, future.signature, keys, request, now)).toEqual({ ok: false, reason: 'gateway signature from the future' });
  const fresh = parts(signIdentity(who, signer, request, now));
  expect(verifyIdentity(`${fresh.head}.${fresh.payload}`, fresh.signature, keys, { ...request, subgraph: 'auth' }, now)).toEqual({
    ok: false,
    reason: 'gateway signature for another subgraph',
  });
  expect(verifyIdentity(`${fresh.head}.${fresh.payload}`, fresh.signature, keys, { ...request, body: '{}' }, now)).toEqual({
    ok: false,
    reason: 'gateway signature for another request',
  });
});
