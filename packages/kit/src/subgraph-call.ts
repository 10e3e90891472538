/**
 * A call from the platform to a subgraph (the gateway's fetches, the kit's read-through peers):
 * which headers go, and what a subgraph that does not answer in time becomes.
 *
 * Headers are an allow-list built from scratch, never a copy of the client's request:
 *   content-type, accept                 — the GraphQL-over-HTTP request itself;
 *   x-crm-identity + x-crm-signature     — the caller's identity, signed for this subgraph, method
 *                                          and exact body (./identity.ts);
 *   traceparent + x-crm-trace-signature  — the trace context, signed (./telemetry/tracing.ts).
 * Nothing else: a client's Authorization (the gateway turns it into the signed identity), Cookie,
 * a forged x-crm-identity or any other header of its own never reaches a subgraph.
 */
import { GraphQLError } from 'graphql';
import { IDENTITY_HEADER, SIGNATURE_HEADER, signIdentity, type Identity } from './identity';
import { signedTraceHeaders, TRACE_SIGNATURE_HEADER } from './telemetry/tracing';

/** Every header a subgraph call may carry (the allow-list above). */
export const SUBGRAPH_CALL_HEADERS = ['content-type', 'accept', IDENTITY_HEADER, SIGNATURE_HEADER, 'traceparent', TRACE_SIGNATURE_HEADER] as const;

export function subgraphCallHeaders(identity: Identity | null, secret: string, subgraph: string, body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json',
    ...signIdentity(identity, secret, { subgraph, method: 'POST', body }),
    ...signedTraceHeaders(secret),
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
