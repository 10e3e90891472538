/**
 * A saga whose step never answers ends TIMED_OUT with its missing steps listed, and still finishes
 * when the late step arrives. The stack runs without the opportunity subgraph, so the
 * customer-deletion saga's opportunity.cancel-requests step does not come until the test sends it.
 */
import { buildEnvelope } from '@crm/events';
import { eventually } from '@crm/testing';
import { startTestStack, type TestStack } from '@crm/platform';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ only: ['auth', 'customer', 'sales-activity', 'analytics'], env: { SAGA_TIMEOUT_MS: '2000' } });
});
afterAll(async () => {
  await stack?.stop();
});

const SAGA = `query($id: ID!) { saga(id: $id) { id status endedAt missingSteps steps { name status } } }`;

test('a saga missing a step times out, lists the step, and completes when it arrives late', async () => {
  const admin = await stack.admin();
  const manager = await stack.user('MANAGER', 'Tim Timeout');
  const rep = await stack.user('SALES', 'Late Larry');
  const created = await rep.gql(`mutation { createCustomer(input: { name: "Slowpoke Ltd" }) { id } }`);
  const customerId = created.data.createCustomer.id as string;
  const del = await eventually(async () => (await manager.gql(`mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, { id: customerId })).data?.deleteCustomer);
  const sagaId = del.id as string;

  const timedOut = await eventually(
    async () => {
      const s = (await admin.gql(SAGA, { id: sagaId })).data?.saga;
      return s?.status === 'TIMED_OUT' ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  expect(timedOut.missingSteps).toEqual(['opportunity.cancel-requests']);
  expect(timedOut.endedAt).toBeNull();

  // The opportunity subgraph comes back and takes its step.
  await stack.bus.publish([
    {
      topic: 'opportunity.events',
      key: sagaId,
      value: JSON.stringify(
        buildEnvelope(
          'opportunity',
          'opportunity.saga_step',
          sagaId,
          {
            sagaId,
            sagaType: 'customer-deletion',
            subjectId: customerId,
            step: 'opportunity.cancel-requests',
            status: 'DONE',
            detail: '0 pending requests cancelled',
            ends: null,
          },
          { actorId: null },
        ),
      ),
    },
  ]);
  const done = await eventually(
    async () => {
      const s = (await admin.gql(SAGA, { id: sagaId })).data?.saga;
      return s?.status === 'COMPLETED' ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  expect(done.missingSteps).toEqual([]);
  expect(done.endedAt).not.toBeNull();
});
