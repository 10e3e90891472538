/**
 * The multi-process stack (STACK_PROCESSES=multi, `npm start`'s default): gateway and each
 * subgraph in a process of their own, events still crossing between them — over Kafka when
 * configured, else over the IPC-bridged in-process bus — and the gateway as two cluster workers.
 */
import { eventually } from '@crm/testing';
import { startProcessTestStack } from '../src/testing';

let stack: Awaited<ReturnType<typeof startProcessTestStack>>;

beforeAll(async () => {
  stack = await startProcessTestStack({ env: { GATEWAY_WORKERS: '2' } });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

test('every service runs in its own process', () => {
  const pids = Object.values(stack.pids);
  expect(Object.keys(stack.pids).sort()).toEqual(['analytics', 'auth', 'customer', 'gateway', 'opportunity', 'sales-activity']);
  expect(new Set([...pids, process.pid]).size).toBe(7);
});

test('a request crosses the processes, and an event from one subgraph reaches the others', async () => {
  const rep = await stack.user('SALES', 'Process Rep');
  const created = await rep.gql(`mutation { createCustomer(input: { name: "Process Co" }) { id name assignedRep { name } } }`);
  expect(created.errors).toBeUndefined();
  expect(created.data.createCustomer).toMatchObject({ name: 'Process Co', assignedRep: { name: 'Process Rep' } });
  const id = created.data.createCustomer.id as string;
  // customer.created → sales-activity (another process) creates the onboarding task: a background effect
  const tasks = await eventually(
    async () => {
      const r = await rep.gql(`query($id: ID!) { customer(id: $id) { tasks { edges { node { title } } } } }`, { id });
      return r.data?.customer?.tasks.edges.length ? r.data.customer.tasks.edges : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  expect(tasks[0].node.title).toMatch(/Process Co/);
  // and requests keep being served by the gateway's workers
  const many = await Promise.all(Array.from({ length: 10 }, () => rep.gql(`{ customers(first: 5) { edges { node { name } } } }`)));
  for (const r of many) expect(r.data.customers.edges.map((e: any) => e.node.name)).toEqual(['Process Co']);
});

test('a service killed with SIGKILL is restarted on its port; the launcher stays up and /ready says so', async () => {
  const pid = stack.pids.customer!;
  const seen: string[] = [];
  const back = new Promise<void>((resolve) => {
    const off = stack.onStatus((name, status) => {
      if (name !== 'customer') return;
      seen.push(status.state);
      if (status.state === 'up') {
        off();
        resolve();
      }
    });
  });
  process.kill(pid, 'SIGKILL');
  await back;
  expect(seen).toEqual(['restarting', 'up']);
  expect(stack.status().customer).toMatchObject({ state: 'up', restarts: 1, lastExit: 'SIGKILL' });
  expect(stack.pids.customer).not.toBe(pid);
  // the gateway's workers serve it again at the same address, and /ready lists it
  const ready = await eventually(
    async () => {
      const body = (await (await fetch(new URL('/ready', stack.gatewayUrl))).json()) as { status: string; services?: Record<string, { state: string; restarts: number }> };
      return body.status === 'ready' && body.services?.customer?.restarts === 1 ? body : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  expect(ready.services!.customer).toMatchObject({ state: 'up', restarts: 1 });
  const rep = await stack.user('SALES', 'After Restart');
  const created = await rep.gql(`mutation { createCustomer(input: { name: "Back Co" }) { id } }`);
  expect(created.errors).toBeUndefined();
}, 300_000);
