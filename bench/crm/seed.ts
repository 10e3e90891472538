/**
 * Bulk seed for bench/crm.ts: 10k customers through the API would take long on 2 cores, and the
 * benchmark is about read paths, so rows go straight into each subgraph's own database with
 * INSERT … SELECT FROM unnest(…) — together with exactly the projections the events of the same
 * writes would have produced (see the handlers: kit customer-directory, analytics events.ts):
 *   customer:        customers                       (the rep directory `reps` comes from real users)
 *   sales-activity:  meetings, tasks, customer_refs  (customer.created → customer_refs)
 *   opportunity:     approval_requests, customer_refs
 *   analytics:       customer_facts, meeting_facts, task_facts, approval_facts; report_versions bumped
 * Not produced: outbox/inbox rows, event_metrics, notifications (CUSTOMER_ASSIGNED, TASK_ASSIGNED,
 * APPROVAL_*) and audit entries for these rows — none is read by the benchmarked queries.
 * Users (reps, managers) are created through the API, so their directories are the real ones.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { databaseUrlFor } from '@crm/config';
import type { TestStack } from '@crm/platform';

const DAY = 86_400_000;
const pick = <T>(xs: readonly T[]): T => xs[randomInt(xs.length)]!;
const A = ['Harbor', 'Summit', 'Blue', 'Granite', 'Northwind', 'Cedar', 'Atlas', 'Meridian', 'Silver', 'Oak'];
const B = ['Capital', 'Holdings', 'Partners', 'Logistics', 'Foods', 'Labs', 'Energy', 'Retail', 'Group', 'Works'];
const INDUSTRIES = ['Finance', 'Retail', 'Energy', 'Healthcare', 'Manufacturing', 'Technology'];
const SIZES = ['SMALL', 'MEDIUM', 'LARGE', 'ENTERPRISE'] as const;
const PROFILES = ['CONSERVATIVE', 'MODERATE', 'AGGRESSIVE'] as const;
const RISKS = ['LOW', 'MEDIUM', 'HIGH'] as const;
const PRIORITIES = ['LOW', 'MEDIUM', 'HIGH', 'URGENT'] as const;

export async function withDb<T>(stack: Pick<TestStack, 'config'>, subgraph: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const url = databaseUrlFor(stack.config, subgraph);
  if (!url) throw new Error('bench/crm needs POSTGRES_URL');
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** INSERT INTO table (cols) SELECT * FROM unnest($1::t1[], …), in chunks. */
async function bulk(c: Client, table: string, cols: [string, string][], rows: unknown[][]): Promise<void> {
  const CHUNK = 5000;
  for (let i = 0; i < rows.length; i += CHUNK) {
    const part = rows.slice(i, i + CHUNK);
    const params = cols.map((_, j) => part.map((r) => r[j]));
    await c.query(`INSERT INTO ${table} (${cols.map(([n]) => n).join(', ')}) SELECT * FROM unnest(${cols.map(([, t], j) => `$${j + 1}::${t}[]`).join(', ')})`, params);
  }
}

export async function seedBulk(stack: Pick<TestStack, 'config'>, o: { customers: number; reps: string[]; managers: string[] }) {
  const now = Date.now();
  const iso = (t: number) => new Date(t).toISOString();
  const customers: unknown[][] = [];
  const refs: unknown[][] = [];
  const facts: unknown[][] = [];
  const meetings: unknown[][] = [];
  const meetingFacts: unknown[][] = [];
  const tasks: unknown[][] = [];
  const taskFacts: unknown[][] = [];
  const approvals: unknown[][] = [];
  const approvalFacts: unknown[][] = [];
  for (let i = 0; i < o.customers; i++) {
    const id = randomUUID();
    const rep = o.reps[i % o.reps.length]!;
    const created = now - randomInt(1, 365 * DAY);
    const name = `${pick(A)} ${pick(B)} ${i + 1}`;
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
    const size = pick(SIZES);
    const profile = pick(PROFILES);
    customers.push([
      id,
      name,
      `contact@${slug}.example`,
      `+1 555 ${String(randomInt(1e7)).padStart(7, '0')}`,
      pick(INDUSTRIES),
      size,
      profile,
      pick(RISKS),
      rep,
      iso(created),
      iso(created),
    ]);
    refs.push([id, name, rep, false, iso(created)]);
    facts.push([id, size, profile, rep, false, iso(created)]);
    // meetings: 0–4 (mean 2), within 90 days either side of now (bounded by the customer's creation)
    for (let m = randomInt(5); m > 0; m--) {
      const mid = randomUUID();
      const at = Math.max(created, now - randomInt(90 * DAY)) + randomInt(-5 * DAY, 5 * DAY);
      const mCreated = Math.min(now, Math.max(created, at - 7 * DAY));
      meetings.push([
        mid,
        id,
        rep,
        iso(at),
        pick(['Intro call', 'Portfolio review', 'Quarterly check-in', 'Site visit']),
        pick(['Send proposal', 'Follow up', null]),
        iso(mCreated),
      ]);
      meetingFacts.push([mid, id, rep, iso(at), iso(mCreated)]);
    }
    // tasks: 1–3; half completed, some in progress, a few cancelled
    // (the first is the onboarding task sales-activity creates on customer.created: "First contact: <name>")
    for (let t = 1 + randomInt(3); t > 0; t--) {
      const tid = randomUUID();
      const first = !tasks.length || tasks[tasks.length - 1]![7] !== id;
      const tCreated = first ? created : created + randomInt(Math.max(1, now - created));
      const roll = randomInt(100);
      const status = roll < 50 ? 'COMPLETED' : roll < 70 ? 'IN_PROGRESS' : roll < 95 ? 'TODO' : 'CANCELLED';
      const completed = status === 'COMPLETED' ? Math.min(now, tCreated + randomInt(1, 14 * DAY)) : null;
      const title = first ? `First contact: ${name}` : pick(['Call back', 'Prepare offer', 'Update KYC documents', 'Schedule review']);
      const due = first ? tCreated + 2 * DAY : tCreated + randomInt(-5 * DAY, 30 * DAY);
      tasks.push([
        tid,
        title,
        null,
        status,
        first ? 'HIGH' : pick(PRIORITIES),
        iso(due),
        completed ? iso(completed) : null,
        id,
        rep,
        rep,
        iso(tCreated),
        completed ? iso(completed) : iso(tCreated),
      ]);
      taskFacts.push([tid, rep, status, iso(tCreated), completed ? iso(completed) : null]);
    }
    // approval requests: every third customer, 1–2; 35 % pending, 40 % approved, 25 % rejected
    if (i % 3 === 0) {
      for (let a = 1 + randomInt(2); a > 0; a--) {
        const aid = randomUUID();
        const requested = created + randomInt(Math.max(1, now - created));
        const roll = randomInt(100);
        const status = roll < 35 ? 'PENDING' : roll < 75 ? 'APPROVED' : 'REJECTED';
        const decided = status === 'PENDING' ? null : Math.min(now, requested + randomInt(60_000, 5 * DAY));
        const amount = randomInt(1, 500) * 100;
        approvals.push([
          aid,
          id,
          rep,
          decided ? pick(o.managers) : null,
          pick(['Fee discount', 'Credit line increase', 'Custom mandate', 'Fast-track onboarding']),
          null,
          amount,
          status,
          decided ? 'Seeded decision' : null,
          iso(requested),
          decided ? iso(decided) : null,
          iso(decided ?? requested),
          decided ? 2 : 1,
        ]);
        approvalFacts.push([aid, rep, status, amount, iso(requested), decided ? iso(decided) : null]);
      }
    }
  }
  const refCols: [string, string][] = [
    ['id', 'uuid'],
    ['name', 'text'],
    ['assigned_rep_id', 'uuid'],
    ['deleted', 'boolean'],
    ['updated_at', 'timestamptz'],
  ];
  await withDb(stack, 'customer', async (c) => {
    await bulk(
      c,
      'customers',
      [
        ['id', 'uuid'],
        ['name', 'text'],
        ['email', 'text'],
        ['phone', 'text'],
        ['industry', 'text'],
        ['size', 'text'],
        ['investment_profile', 'text'],
        ['risk_tolerance', 'text'],
        ['assigned_rep_id', 'uuid'],
        ['created_at', 'timestamptz'],
        ['updated_at', 'timestamptz'],
      ],
      customers,
    );
    await c.query('ANALYZE');
  });
  await withDb(stack, 'sales-activity', async (c) => {
    await bulk(c, 'customer_refs', refCols, refs);
    await bulk(
      c,
      'meetings',
      [
        ['id', 'uuid'],
        ['customer_id', 'uuid'],
        ['rep_id', 'uuid'],
        ['starts_at', 'timestamptz'],
        ['summary', 'text'],
        ['next_action', 'text'],
        ['created_at', 'timestamptz'],
      ],
      meetings,
    );
    await bulk(
      c,
      'tasks',
      [
        ['id', 'uuid'],
        ['title', 'text'],
        ['description', 'text'],
        ['status', 'text'],
        ['priority', 'text'],
        ['due_at', 'timestamptz'],
        ['completed_at', 'timestamptz'],
        ['customer_id', 'uuid'],
        ['assignee_id', 'uuid'],
        ['created_by_id', 'uuid'],
        ['created_at', 'timestamptz'],
        ['updated_at', 'timestamptz'],
      ],
      tasks,
    );
    await c.query('ANALYZE');
  });
  await withDb(stack, 'opportunity', async (c) => {
    await bulk(c, 'customer_refs', refCols, refs);
    await bulk(
      c,
      'approval_requests',
      [
        ['id', 'uuid'],
        ['customer_id', 'uuid'],
        ['requester_id', 'uuid'],
        ['approver_id', 'uuid'],
        ['title', 'text'],
        ['description', 'text'],
        ['amount', 'float8'],
        ['status', 'text'],
        ['decision_comment', 'text'],
        ['created_at', 'timestamptz'],
        ['decided_at', 'timestamptz'],
        ['updated_at', 'timestamptz'],
        ['version', 'int4'],
      ],
      approvals,
    );
    await c.query('ANALYZE');
  });
  await withDb(stack, 'analytics', async (c) => {
    await bulk(
      c,
      'customer_facts',
      [
        ['id', 'text'],
        ['size', 'text'],
        ['investment_profile', 'text'],
        ['assigned_rep_id', 'text'],
        ['deleted', 'boolean'],
        ['created_at', 'timestamptz'],
      ],
      facts,
    );
    await bulk(
      c,
      'meeting_facts',
      [
        ['id', 'text'],
        ['customer_id', 'text'],
        ['rep_id', 'text'],
        ['starts_at', 'timestamptz'],
        ['created_at', 'timestamptz'],
      ],
      meetingFacts,
    );
    await bulk(
      c,
      'task_facts',
      [
        ['id', 'text'],
        ['assignee_id', 'text'],
        ['status', 'text'],
        ['created_at', 'timestamptz'],
        ['completed_at', 'timestamptz'],
      ],
      taskFacts,
    );
    await bulk(
      c,
      'approval_facts',
      [
        ['id', 'text'],
        ['requester_id', 'text'],
        ['status', 'text'],
        ['amount', 'float8'],
        ['requested_at', 'timestamptz'],
        ['decided_at', 'timestamptz'],
      ],
      approvalFacts,
    );
    // As the handlers do in the same transaction: no cached report predates these rows.
    await c.query('UPDATE report_versions SET version = version + 1');
    await c.query('ANALYZE');
  });
  return { customers: customers.length, meetings: meetings.length, tasks: tasks.length, approvals: approvals.length };
}

/** Row counts per database: every customer, meeting, task and approval has its projections. */
export async function checkConsistency(stack: Pick<TestStack, 'config'>) {
  // one connection per database, all five at once: the check itself adds little to the catch-up it measures
  const counted = async (sub: string, queries: Record<string, string>) =>
    withDb(stack, sub, async (c) => {
      const out: Record<string, number> = {};
      for (const [k, q] of Object.entries(queries)) out[k] = Number((await c.query<{ n: string }>(q)).rows[0]!.n);
      return out;
    });
  const parts = await Promise.all([
    counted('customer', { customers: 'SELECT count(*) AS n FROM customers WHERE deleted_at IS NULL' }),
    counted('sales-activity', {
      salesActivityRefs: 'SELECT count(*) AS n FROM customer_refs WHERE NOT deleted',
      meetings: 'SELECT count(*) AS n FROM meetings',
      tasks: 'SELECT count(*) AS n FROM tasks',
    }),
    counted('opportunity', { opportunityRefs: 'SELECT count(*) AS n FROM customer_refs WHERE NOT deleted', approvals: 'SELECT count(*) AS n FROM approval_requests' }),
    counted('analytics', {
      customerFacts: 'SELECT count(*) AS n FROM customer_facts WHERE NOT deleted',
      meetingFacts: 'SELECT count(*) AS n FROM meeting_facts',
      taskFacts: 'SELECT count(*) AS n FROM task_facts',
      approvalFacts: 'SELECT count(*) AS n FROM approval_facts',
    }),
  ]);
  const all = Object.assign({}, ...parts) as Record<string, number>;
  const counts = {
    customers: all.customers!,
    salesActivityRefs: all.salesActivityRefs!,
    opportunityRefs: all.opportunityRefs!,
    customerFacts: all.customerFacts!,
    meetings: all.meetings!,
    meetingFacts: all.meetingFacts!,
    tasks: all.tasks!,
    taskFacts: all.taskFacts!,
    approvals: all.approvals!,
    approvalFacts: all.approvalFacts!,
  };
  const ok =
    counts.customers === counts.salesActivityRefs &&
    counts.customers === counts.opportunityRefs &&
    counts.customers === counts.customerFacts &&
    counts.meetings === counts.meetingFacts &&
    counts.tasks === counts.taskFacts &&
    counts.approvals === counts.approvalFacts;
  return { ok, counts };
}
