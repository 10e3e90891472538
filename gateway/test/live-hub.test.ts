/**
 * The live hub's lanes: events of different topics are resolved concurrently (a stuck approval
 * resolution does not hold back notifications), events of one topic stay in order, and a
 * resolution that does not answer within SUBSCRIPTION_RESOLVE_TIMEOUT_MS is skipped so the lane
 * moves on.
 */
import { randomUUID } from 'node:crypto';
import type { ExecutionResult } from 'graphql';
import { MemoryBus, buildEnvelope } from '@crm/events';
import { createLogger } from '@crm/telemetry';
import { eventually } from '@crm/testing';
import { LiveHub, type Resolver } from '../src/features/subscriptions/hub';
import { LiveQueue } from '../src/features/subscriptions/queue';
import { LIVE_FIELDS } from '../src/features/subscriptions/topics';
import type { LiveOperation } from '../src/features/subscriptions/operation';
import { notificationMessage as notification } from './support/live-events';

const field = (name: string) => LIVE_FIELDS.find((f) => f.field === name)!;
const admin = { userId: randomUUID(), role: 'ADMIN' as const, email: 'admin@test.local' };
const notificationOp: LiveOperation = { field: field('notificationAdded'), responseKey: 'notificationAdded', query: 'unused', variables: {}, shareKey: 'n' };
const approvalOp: LiveOperation = { field: field('approvalStatusChanged'), responseKey: 'approvalStatusChanged', query: 'unused', variables: {}, shareKey: 'a' };

function approval() {
  const requestId = randomUUID();
  const env = buildEnvelope(
    'opportunity',
    'approval.requested',
    requestId,
    {
      requestId,
      customerId: randomUUID(),
      requesterId: randomUUID(),
      approverId: null,
      title: 't',
      amount: null,
      status: 'PENDING',
      comment: null,
      requestedAt: new Date().toISOString(),
      decidedAt: null,
    },
    { actorId: null },
  );
  return { topic: 'opportunity.events', key: requestId, value: JSON.stringify(env) };
}

function collect(hub: LiveHub, op: LiveOperation): { ids: string[]; stop: () => Promise<void> } {
  const ids: string[] = [];
  const queue = new LiveQueue({ limit: 100, maxBufferedBytes: 1_000_000, buffered: () => 0, onOverflow: () => {}, onEnd: () => unregister() });
  const unregister = hub.add(op, admin, queue);
  const reading = (async () => {
    for await (const r of queue) ids.push(String((r.data as Record<string, { id: string }>)[op.responseKey]!.id));
  })();
  return { ids, stop: async () => (queue.end(), await reading) };
}

test('a stuck resolution on one topic neither holds back another topic nor, after its timeout, its own', async () => {
  const bus = new MemoryBus();
  const stuck = new Set<string>();
  const resolve: Resolver = (op, _identity, entityId) =>
    stuck.has(entityId) ? new Promise<ExecutionResult>(() => {}) : Promise.resolve({ data: { [op.responseKey]: { id: entityId } } });
  const hub = new LiveHub({ bus, resolve, logger: createLogger('test', 'silent'), fields: LIVE_FIELDS, concurrency: 4, resolveTimeoutMs: 1_500 });
  await hub.start();
  const approvals = collect(hub, approvalOp);
  const notifications = collect(hub, notificationOp);

  const first = approval();
  stuck.add(first.key); // its subgraph never answers
  const second = approval();
  await bus.publish([first, second]);
  const n = Array.from({ length: 5 }, () => notification(admin.userId));
  await bus.publish(n);

  // notifications arrive while the approval lane is still waiting on the stuck resolution
  await eventually(async () => notifications.ids.length === 5, { timeoutMs: 5_000 });
  expect(notifications.ids).toEqual(n.map((m) => m.key));
  expect(approvals.ids).toEqual([]);
  expect(hub.snapshot().timedOut).toBe(0);

  // after the timeout the stuck one is skipped and the approval lane goes on, in order
  await eventually(async () => approvals.ids.length === 1, { timeoutMs: 10_000 });
  expect(approvals.ids).toEqual([second.key]);
  expect(hub.snapshot().timedOut).toBe(1);

  await approvals.stop();
  await notifications.stop();
  await hub.stop();
  await bus.close();
});
