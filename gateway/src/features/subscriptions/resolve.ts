/**
 * Resolution: one event's entity, the subscriber's whole selection, through the federated query
 * plan, with the subscriber's own identity (so every subgraph applies its own access rules).
 * `null` means "do not deliver": the entity query returned null (not visible to this identity,
 * e.g. someone else's notification) or the caller may not read it (FORBIDDEN / NOT_FOUND).
 * Any other error is logged (and delivered).
 */
import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Identity } from '@crm/runtime';
import type { Logger } from '@crm/telemetry';
import type { GatewayDeps } from '../feature';
import { ENTITY_ID_VAR, type LiveOperation } from './operation';

const HIDDEN = new Set(['FORBIDDEN', 'NOT_FOUND', 'UNAUTHENTICATED']);

export async function resolveEntity(
  deps: Pick<GatewayDeps, 'apollo' | 'contextFor'>,
  op: Pick<LiveOperation, 'query' | 'variables' | 'responseKey'>,
  identity: Identity,
  entityId: string,
  logger?: Logger,
): Promise<ExecutionResult | null> {
  const response = await deps.apollo.executeOperation(
    { query: op.query, variables: { ...op.variables, [ENTITY_ID_VAR]: entityId } },
    // `liveSubscription` marks internal resolutions, for plugins that treat them differently (e.g. rate limits).
    { contextValue: { ...(await deps.contextFor(undefined, identity)), liveSubscription: true } },
  );
  if (response.body.kind !== 'single') {
    return { errors: [new GraphQLError('Incremental delivery is not supported in subscriptions')] };
  }
  const { data, errors } = response.body.singleResult;
  const value = data?.[op.responseKey];
  if (value === null || value === undefined) {
    if (!errors?.length || errors.every((e) => HIDDEN.has(String(e.extensions?.code)))) return null;
  }
  // Anything but "not visible to this subscriber" is a fault worth seeing (a refusal by a gateway
  // feature, a subgraph down, a bug): logged, and delivered as the error it is.
  const faults = errors?.filter((e) => !HIDDEN.has(String(e.extensions?.code))) ?? [];
  if (faults.length > 0) {
    logger?.warn({ userId: identity.userId, entityId, errors: faults.map((e) => ({ message: e.message, code: e.extensions?.code })) }, 'live: resolving an event for a subscriber failed');
  }
  return {
    data: (data ?? null) as ExecutionResult['data'],
    ...(errors?.length ? { errors: errors.map((e) => new GraphQLError(e.message, { extensions: e.extensions ?? {}, ...(e.path ? { path: e.path } : {}) })) } : {}),
  };
}
