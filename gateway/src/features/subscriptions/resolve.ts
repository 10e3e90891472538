/**
 * Resolution: one event's entity, the subscriber's whole selection, through the federated query
 * plan, with the subscriber's own identity (so every subgraph applies its own access rules). It is
 * the gateway's own operation, not a client's: it goes to the executor directly
 * (../../pipeline.ts InternalExecutor), so no client rule (budget, cost, trusted documents) applies
 * to it — the subscribe that asked for it went through all of them.
 * `null` means "do not deliver": the entity query returned null (not visible to this identity,
 * e.g. someone else's notification) or the caller may not read it (FORBIDDEN / NOT_FOUND).
 * Any other error is logged (and delivered).
 */
import { createHash } from 'node:crypto';
import { parse, type ExecutionResult } from 'graphql';
import type { Identity } from '@crm/runtime';
import type { Logger } from '@crm/telemetry';
import { toGraphQLError, type InternalOperation } from '../../pipeline';
import type { GatewayDeps } from '../feature';
import { ENTITY_ID_VAR, type LiveOperation } from './operation';

const HIDDEN = new Set(['FORBIDDEN', 'NOT_FOUND', 'UNAUTHENTICATED']);

export async function resolveEntity(
  deps: Pick<GatewayDeps, 'executeInternal' | 'contextFor'>,
  op: Pick<LiveOperation, 'query' | 'variables' | 'responseKey' | 'entity'>,
  identity: Identity,
  entityId: string,
  logger?: Logger,
): Promise<ExecutionResult | null> {
  const entity = op.entity ?? internalOperation(op.query);
  const { data, errors } = await deps.executeInternal(entity, { ...op.variables, [ENTITY_ID_VAR]: entityId }, await deps.contextFor(undefined, identity));
  const value: unknown = data?.[op.responseKey];
  if (value === null || value === undefined) {
    if (!errors?.length || errors.every((e) => HIDDEN.has(String(e.extensions?.code)))) return null;
  }
  // Anything but "not visible to this subscriber" is a fault worth seeing (a subgraph down, a bug):
  // logged, and delivered as the error it is.
  const faults = errors?.filter((e) => !HIDDEN.has(String(e.extensions?.code))) ?? [];
  if (faults.length > 0) {
    logger?.warn(
      { userId: identity.userId, entityId, errors: faults.map((e) => ({ message: e.message, code: e.extensions?.code })) },
      'live: resolving an event for a subscriber failed',
    );
  }
  return {
    data: (data ?? null) as ExecutionResult['data'],
    ...(errors?.length ? { errors: errors.map(toGraphQLError) } : {}),
  };
}

/** An entity query given as text only (a LiveOperation built by hand): parsed and hashed here. */
function internalOperation(query: string): InternalOperation {
  return { document: parse(query), query, queryHash: createHash('sha256').update(query).digest('hex') };
}
