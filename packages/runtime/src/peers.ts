/**
 * Read-your-writes across domains. A subgraph keeps local copies of other domains' entities
 * (customer_refs, reps), fed by events; they lag the owner by the event latency, both ways: a copy
 * may not have an entity created a moment ago, or still show one deleted or changed a moment ago.
 * So a write that names such an entity asks the owner synchronously (`ownerFirst`) — a call to its
 * `_entities` signed with this subgraph's own key (a service principal, not a user: kit
 * identity.ts), with a short timeout — stores the answer in the copy, and only then decides. Events still keep the copies
 * fresh; this covers the gap between a write in one domain and the next request in another.
 */
import { unavailable } from '@crm/errors';
import type { Identity } from './identity';
import type { SigningKey } from './keys';
import { isTimeout, serviceCallHeaders, subgraphTimeout } from './subgraph-call';
import type { Logger } from '@crm/telemetry';

/**
 * Who a peer's read-through is served as: the platform itself, with every read right of an ADMIN.
 * The caller does not claim it: it signs as its own service principal (its own key, no user), and
 * the peer answers such a call only when it is an `_entities` read (subgraph.ts), under this identity.
 */
export const SYSTEM_IDENTITY: Identity = { userId: '00000000-0000-0000-0000-000000000000', role: 'ADMIN', email: 'system@crm.internal' };

export interface Peers {
  /**
   * The entity `typename` with key `id`, as its owning subgraph serves it through `_entities`
   * (`selection` is the field selection inside `... on <typename>`), or null when the owner has
   * none (unknown or deleted). Undefined when this deployment runs without the owner (a partial
   * test stack): there is no one to ask, and the local copy is the only truth. Throws
   * SERVICE_UNAVAILABLE when the owner cannot be asked.
   */
  entity<T>(subgraph: string, typename: string, id: string, selection: string): Promise<T | null | undefined>;
}

export interface PeersOptions {
  /** This subgraph's own key (SERVICE_SIGNING_KEY): a peer call is this service, never a user. */
  signer: () => SigningKey;
  timeoutMs: number;
  /**
   * The owning subgraph's GraphQL URL, looked up at call time (peers may start later); null when
   * the deployment deliberately runs without that subgraph (a partial test stack): the local copy
   * is then the only truth.
   */
  urlOf(subgraph: string): string | null | undefined;
  logger?: Logger;
}

export function createPeers(options: PeersOptions): Peers {
  /**
   * Peers that did not answer within the timeout, and until when they are not asked again: for as
   * long as the timeout. A hanging owner then costs one write the timeout, not every write (each
   * caller's local copy decides meanwhile).
   */
  const resting = new Map<string, number>();
  return {
    async entity<T>(subgraph: string, typename: string, id: string, selection: string): Promise<T | null | undefined> {
      const url = options.urlOf(subgraph);
      if (url === null) return undefined;
      if (!url) throw unavailable(`The ${subgraph} service is not known here; cannot confirm ${typename} ${id}`);
      const until = resting.get(subgraph);
      if (until !== undefined && Date.now() < until) throw unavailable(`The ${subgraph} service did not answer in time a moment ago; cannot confirm ${typename} ${id}; try again`);
      resting.delete(subgraph);
      const query = `query($r: [_Any!]!) { _entities(representations: $r) { ... on ${typename} { ${selection} } } }`;
      const started = Date.now();
      let body: { data?: { _entities?: (T | null)[] }; errors?: { message: string }[] };
      try {
        const payload = JSON.stringify({ query, variables: { r: [{ __typename: typename, id }] } });
        const res = await fetch(url, {
          method: 'POST',
          headers: serviceCallHeaders(options.signer(), subgraph, payload),
          body: payload,
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        body = (await res.json()) as typeof body;
      } catch (err) {
        options.logger?.warn({ err: (err as Error).message, subgraph, typename, id }, 'read-through failed');
        if (isTimeout(err)) {
          resting.set(subgraph, Date.now() + options.timeoutMs);
          throw subgraphTimeout(subgraph, options.timeoutMs);
        }
        throw unavailable(`Could not confirm ${typename} ${id} with the ${subgraph} service; try again`);
      }
      if (body.errors?.length && !body.data?._entities) {
        options.logger?.warn({ errors: body.errors.map((e) => e.message), subgraph, typename, id }, 'read-through refused');
        throw unavailable(`Could not confirm ${typename} ${id} with the ${subgraph} service; try again`);
      }
      options.logger?.debug({ subgraph, typename, id, ms: Date.now() - started }, 'read-through');
      return body.data?._entities?.[0] ?? null;
    },
  };
}

/**
 * What a write decides on: the owner's answer (`ask`, which stores it in the local copy), else the
 * local copy. With no owner in this deployment (`ask` resolves undefined) the copy is the truth;
 * when the owner cannot be asked, a `usable` copy decides, else the owner's error stands.
 */
export async function ownerFirst<R>(ask: () => Promise<R | null | undefined>, local: () => Promise<R | null>, usable: (copy: R | null) => boolean): Promise<R | null> {
  let answer: R | null | undefined;
  try {
    answer = await ask();
  } catch (err) {
    const copy = await local();
    if (usable(copy)) return copy;
    throw err;
  }
  return answer === undefined ? local() : answer;
}
