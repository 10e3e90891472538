/**
 * A call from the platform to a subgraph (the gateway's fetches, the kit's read-through peers):
 * which headers go, and what a subgraph that does not answer in time becomes.
 *
 * Headers are an allow-list built from scratch, never a copy of the client's request:
 *   content-type, accept                 — the GraphQL-over-HTTP request itself;
 *   x-crm-identity + x-crm-signature     — the caller's identity (the gateway's user, or a peer's service
 *                                          principal), signed for this subgraph, method and exact body
 *                                          with the caller's own key (./identity.ts);
 *   traceparent + x-crm-trace-signature  — the trace context, signed (./telemetry/tracing.ts).
 * Nothing else: a client's Authorization (the gateway turns it into the signed identity), Cookie,
 * a forged x-crm-identity or any other header of its own never reaches a subgraph.
 */
import { GraphQLError } from 'graphql';
import { IDENTITY_HEADER, SIGNATURE_HEADER, signIdentity, signServiceCall, type Identity } from './identity';
import type { SigningKey } from './keys';
import { signedTraceHeaders, TRACE_SIGNATURE_HEADER } from '@crm/telemetry';

/** Every header a subgraph call may carry (the allow-list above). */
export const SUBGRAPH_CALL_HEADERS = ['content-type', 'accept', IDENTITY_HEADER, SIGNATURE_HEADER, 'traceparent', TRACE_SIGNATURE_HEADER] as const;

/** The gateway's call: `identity` signed with the gateway's key. */
export function subgraphCallHeaders(identity: Identity | null, signer: SigningKey, subgraph: string, body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json',
    ...signIdentity(identity, signer, { subgraph, method: 'POST', body }),
    ...signedTraceHeaders(signer),
  };
}

/** A subgraph's read-through call to a peer: its own service principal, signed with its own key (no user). */
export function serviceCallHeaders(signer: SigningKey, subgraph: string, body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json',
    ...signServiceCall(signer, { subgraph, method: 'POST', body }),
    ...signedTraceHeaders(signer),
  };
}

/** The error an operation gets for a subgraph that did not answer within `timeoutMs`. */
export function subgraphTimeout(subgraph: string, timeoutMs: number): GraphQLError {
  return new GraphQLError(`The ${subgraph} service did not answer within ${timeoutMs} ms; try again`, {
    extensions: { code: 'SERVICE_UNAVAILABLE', reason: 'SUBGRAPH_TIMEOUT', service: subgraph, timeoutMs },
  });
}

/** True for the error an aborted fetch (AbortSignal.timeout) rejects with. */
export function isTimeout(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}
