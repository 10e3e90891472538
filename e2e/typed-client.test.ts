/**
 * The typed client (clients/src/cli.ts over the generated documents) against a whole stack whose
 * gateway loads the generated trusted-documents manifest (TRUSTED_DOCUMENTS=allow): a SALES rep
 * logs in, creates and lists customers and requests an approval; a MANAGER subscribed to
 * notificationAdded gets the APPROVAL_REQUESTED notification. Every request goes by hash alone,
 * served from the manifest — so the manifest and the generated hashes agree with the gateway.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { print } from 'graphql';
import { eventually } from '@crm/testing';
import { ADMIN, startTestStack, type TestStack } from '@crm/platform';
import { seed } from '../apps/platform/src/seed';
import { createCustomer, crmClient, listCustomers, login, main, requestApproval, subscribeNotifications, type NotificationEvent, type Subscription } from '../clients/src/cli';
import { CustomersDocument } from '../clients/src/gql/graphql';

let stack: TestStack;
const subscriptions: Subscription[] = [];
beforeAll(async () => {
  stack = await startTestStack({ env: { TRUSTED_DOCUMENTS: 'allow', TRUSTED_DOCUMENTS_PATH: join(__dirname, '../clients/persisted-operations.json') } });
}, 180_000);
afterAll(async () => {
  await Promise.all(subscriptions.map((s) => s.dispose()));
  await stack?.stop();
});

const PASSWORD = 'password-1234'; // what stack.user() registers with

test('log in, create and list customers, request an approval; the manager hears of it live', async () => {
  const rep = await stack.user('SALES', 'Tina Typed');
  const manager = await stack.user('MANAGER', 'Manny Typed');

  const heard: NotificationEvent[] = [];
  const errors: unknown[] = [];
  const managerClient = crmClient(stack.gatewayUrl);
  await login(managerClient, manager.email, PASSWORD);
  subscriptions.push(subscribeNotifications(stack.gatewayUrl, managerClient.token!, { next: (n) => heard.push(n), error: (e) => errors.push(e) }));
  await eventually(
    async () => {
      const res = await fetch(stack.gatewayUrl.replace(/\/graphql$/, '/graphql/live-stats'));
      return ((await res.json()) as { subscriptions: number }).subscriptions >= 1;
    },
    { timeoutMs: 30_000 },
  );

  const client = crmClient(stack.gatewayUrl);
  const me = await login(client, rep.email, PASSWORD);
  expect(me.user).toMatchObject({ email: rep.email, name: 'Tina Typed', role: 'SALES' });

  const created = await createCustomer(client, { name: 'Typed Traders' });
  const listed = await listCustomers(client, { search: 'Typed Traders' });
  expect(listed.totalCount).toBe(1);
  expect(listed.customers[0]).toMatchObject({ id: created.id, name: 'Typed Traders', assignedRep: { name: 'Tina Typed' } });

  // usable at once in the opportunity subgraph: no retry
  const request = await requestApproval(client, { customerId: created.id, title: 'Typed discount', amount: 2500 });
  expect(request).toMatchObject({ title: 'Typed discount', amount: 2500, status: 'PENDING', customer: { id: created.id }, requester: { name: 'Tina Typed' } });

  const note = await eventually(async () => heard.find((n) => n.type === 'APPROVAL_REQUESTED' && n.entityId === request.id), { timeoutMs: 30_000 });
  expect(note.recipient.name).toBe('Manny Typed');
  expect(note.title).toContain('Typed discount');
  expect(errors).toEqual([]);

  // Every operation went by hash alone: the gateway found
  // each one in the generated manifest and never needed the text.
  expect(client.stats.withText).toBe(0);
  expect(client.stats.byHash).toBeGreaterThanOrEqual(4);
});

test('the CLI logs in, lists and requests an approval', async () => {
  const rep = await stack.user('SALES', 'Carl Cli');
  const client = crmClient(stack.gatewayUrl);
  await login(client, rep.email, PASSWORD);
  const customer = await createCustomer(client, { name: 'Cli Corp' });
  await requestApproval(client, { customerId: customer.id, title: 'warm-up', amount: null });

  const lines: string[] = [];
  const sub = await main(['--url', stack.gatewayUrl, '--email', rep.email, '--password', PASSWORD, '--title', 'From the CLI', '--amount', '99'], (l) => lines.push(l));
  expect(sub).toBeUndefined();
  expect(lines[0]).toBe(`logged in as Carl Cli <${rep.email}> (SALES)`);
  expect(lines).toContain('1 customers:');
  expect(lines.some((l) => l.includes('Cli Corp'))).toBe(true);
  expect(lines.at(-1)).toMatch(/^approval requested: .+ "From the CLI" on Cli Corp — PENDING$/);
});

test('a document the manifest lacks goes by APQ: the text once, then the hash alone', async () => {
  const admin = await stack.admin();
  // The Customers document printed differently from the manifest's text: its own hash is unknown.
  const text = print(CustomersDocument);
  const hash = createHash('sha256').update(text).digest('hex');
  const unlisted = { ...CustomersDocument, __meta__: { hash: `sha256:${hash}` } } as typeof CustomersDocument;
  const client = crmClient(stack.gatewayUrl, admin.token);
  const first = await client.request(unlisted, { first: 1 });
  expect(client.stats).toEqual({ byHash: 0, withText: 1 });
  const second = await client.request(unlisted, { first: 1 });
  expect(client.stats).toEqual({ byHash: 1, withText: 1 });
  expect(second.customers.totalCount).toBe(first.customers.totalCount);
});

test('the seed runs on the typed client: users of every role, customers with activities, decided approvals', async () => {
  const lines: string[] = [];
  const summary = await seed(
    { url: stack.gatewayUrl, adminEmail: ADMIN.email, adminPassword: ADMIN.password, customers: 6, password: 'seed-password-1234', domain: 'seed-test.local' },
    (l) => lines.push(l),
  );
  expect(summary).toMatchObject({ customers: 6, meetings: 6, tasks: 6, tasksCompleted: 6, approvals: 5, approved: 5, rejected: 0 });
  expect(summary.users.MANAGER).toHaveLength(3);
  expect(summary.users.COMPLIANCE).toHaveLength(2);
  expect(summary.users.SALES).toHaveLength(5);
  // What the seed reported is what the platform holds: its users with their roles, its customers.
  const admin = await stack.admin();
  const users = await admin.gql('{ users(first: 100) { edges { node { email role } } } }');
  const seeded = users.data.users.edges.map((e: { node: { email: string; role: string } }) => e.node).filter((u: { email: string }) => u.email.endsWith('@seed-test.local'));
  expect(seeded).toHaveLength(10);
  expect(seeded.filter((u: { role: string }) => u.role === 'MANAGER')).toHaveLength(3);
  const rep = crmClient(stack.gatewayUrl);
  await login(rep, summary.users.SALES[0]!, 'seed-password-1234');
  expect((await listCustomers(rep, { first: 50 })).customers.length).toBeGreaterThan(0);
  expect(lines[0]).toMatch(/^seeding .+: 6 customers over 5 SALES reps/);
});

test('signing in again after a role change works from the same client (its revoked token is not sent)', async () => {
  const rep = await stack.user('SALES', 'Rita Promoted');
  const admin = await stack.admin();
  const client = crmClient(stack.gatewayUrl);
  await login(client, rep.email, PASSWORD);
  const old = client.token!;
  const promoted = await admin.gql('mutation($id: ID!) { updateUser(id: $id, input: { role: MANAGER }) { id role } }', { id: rep.id });
  expect(promoted.data?.updateUser?.role).toBe('MANAGER');
  // the gateway refuses the old token once it has heard of the change
  await eventually(async () => (await stack.gql('{ me { id } }', {}, old)).errors?.[0]?.extensions?.code === 'UNAUTHENTICATED');
  const again = await login(client, rep.email, PASSWORD);
  expect(again.user.role).toBe('MANAGER');
  expect(client.token).not.toBe(old);
});
