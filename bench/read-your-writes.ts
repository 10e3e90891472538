/**
 * Read-your-writes across domains: create a customer (customer subgraph), then at once — no wait,
 * no retry — request an approval on it (opportunity), record a meeting (sales-activity) and create
 * a task for it (sales-activity). Also: an ADMIN makes a new user a SALES rep and a MANAGER at once
 * assigns a customer to them (customer checks the rep against auth). ROUNDS times (default 100).
 *
 *   npx tsx bench/read-your-writes.ts                      # embedded (embedded Postgres, in-process bus)
 *   POSTGRES_URL=… KAFKA_BROKERS=… REDIS_URL=… npx tsx bench/read-your-writes.ts   # real services
 *
 * Appends a line per run to bench/results/read-your-writes.md. e2e/read-your-writes.test.ts runs
 * the same rounds (fewer) in CI.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestStack, TestUser } from '@crm/platform';

export interface RoundOutcome {
  ok: boolean;
  failures: string[];
}

const CREATE = `mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`;
const APPROVAL = `mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id status } }`;
const MEETING = `mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id } }`;
const TASK = `mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }`;

/** One round as a SALES rep: create, then request approval, record a meeting and create a task at once. */
export async function customerRound(rep: TestUser, i: number): Promise<RoundOutcome> {
  const failures: string[] = [];
  const created = await rep.gql(CREATE, { input: { name: `RYW ${i} ${Date.now()}` } });
  const customerId = created.data?.createCustomer?.id as string | undefined;
  if (!customerId) return { ok: false, failures: [`createCustomer: ${JSON.stringify(created.errors)}`] };
  const [approval, meeting, task] = await Promise.all([
    rep.gql(APPROVAL, { input: { customerId, title: `Fee discount ${i}`, amount: 100 + i } }),
    rep.gql(MEETING, { input: { customerId, startsAt: new Date().toISOString(), summary: `Kick-off ${i}` } }),
    rep.gql(TASK, { input: { title: `Follow up ${i}`, customerId } }),
  ]);
  if (!approval.data?.requestApproval) failures.push(`requestApproval: ${JSON.stringify(approval.errors)}`);
  if (!meeting.data?.recordMeeting) failures.push(`recordMeeting: ${JSON.stringify(meeting.errors)}`);
  if (!task.data?.createTask) failures.push(`createTask: ${JSON.stringify(task.errors)}`);
  return { ok: failures.length === 0, failures };
}

/** One round as ADMIN and MANAGER: a new user becomes SALES, and is at once assigned a customer. */
export async function repRound(stack: TestStack, manager: TestUser, customerId: string): Promise<RoundOutcome> {
  const fresh = await stack.user('SALES'); // registered; auth's user.created is still on its way
  const r = await manager.gql(`mutation($id: ID!, $rep: ID!) { assignCustomer(id: $id, repId: $rep) { assignedRep { id } } }`, { id: customerId, rep: fresh.id });
  const ok = r.data?.assignCustomer?.assignedRep?.id === fresh.id;
  return { ok, failures: ok ? [] : [`assignCustomer: ${JSON.stringify(r.errors)}`] };
}

export async function runRounds(rounds: number, stack: TestStack): Promise<{ customer: number; rep: number; failures: string[] }> {
  const rep = await stack.user('SALES');
  const manager = await stack.user('MANAGER');
  const failures: string[] = [];
  let customer = 0;
  let reps = 0;
  for (let i = 0; i < rounds; i++) {
    const c = await customerRound(rep, i);
    if (c.ok) customer += 1;
    failures.push(...c.failures);
  }
  const target = await manager.gql(CREATE, { input: { name: `RYW target ${Date.now()}` } });
  const targetId = target.data.createCustomer.id as string;
  for (let i = 0; i < Math.max(1, Math.floor(rounds / 10)); i++) {
    const r = await repRound(stack, manager, targetId);
    if (r.ok) reps += 1;
    failures.push(...r.failures);
  }
  return { customer, rep: reps, failures };
}

async function main() {
  const { startTestStack } = await import('@crm/platform');
  const rounds = Number(process.env.ROUNDS ?? 100);
  const stack = await startTestStack({ env: { RATE_LIMIT_ENABLED: 'false' } });
  const mode = stack.bus.kind === 'kafka' ? 'Kafka + Postgres' : 'embedded (embedded Postgres, in-process bus)';
  try {
    const started = Date.now();
    const result = await runRounds(rounds, stack);
    const repRounds = Math.max(1, Math.floor(rounds / 10));
    const line = `| ${new Date().toISOString().slice(0, 16)} | ${mode} | ${result.customer}/${rounds} | ${result.rep}/${repRounds} | ${((Date.now() - started) / 1000).toFixed(1)} s |`;
    console.log(line);
    for (const f of result.failures.slice(0, 10)) console.log('  ', f);
    const dir = join(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    appendFileSync(join(dir, 'read-your-writes.md'), `${line}\n`);
    process.exitCode = result.failures.length === 0 ? 0 : 1;
  } finally {
    await stack.stop();
  }
}

if (require.main === module) void main();
