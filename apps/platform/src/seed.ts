/**
 * `npm run seed`: demo data through the public API of a running gateway, so every event, saga,
 * projection and notification happens as it would for real users:
 * - users of every role: the ADMIN of ADMIN_EMAIL / ADMIN_PASSWORD (the same values the gateway's
 *   `npm start` ran with), MANAGERs, COMPLIANCE and SALES reps, all with the password SEED_PASSWORD;
 * - SEED_CUSTOMERS customers (300) spread over the reps, with meetings, tasks (half completed) and
 *   approval requests, some approved or rejected by the managers.
 * Re-running adds another batch of customers (existing seed users log in again).
 *
 * Rate limits (docs/gateway-protection.md) are per user, RATE_LIMIT_POINTS per window: the seed
 * stays within them without touching the gateway's configuration — the work is spread over as
 * many reps as the limit the gateway announces (RateLimit-Limit) requires, each rep doing its own
 * customers, as real reps would. Registrations and logins are anonymous (one budget per IP): about
 * one point per seed user per run. A gateway started with rate limits off or a larger
 * RATE_LIMIT_POINTS gets fewer reps.
 *
 * Variables (the script's own; the services' configuration is packages/kit/src/config.ts):
 *   GATEWAY_URL (http://localhost:4000/graphql), ADMIN_EMAIL, ADMIN_PASSWORD (required),
 *   SEED_CUSTOMERS (300), SEED_PASSWORD (seed-password-1234), SEED_EMAIL_DOMAIN (seed.crm.local).
 */
import { randomInt } from 'node:crypto';

type Role = 'ADMIN' | 'MANAGER' | 'SALES' | 'COMPLIANCE';
interface GqlError { message: string; extensions?: { code?: string; retryAfter?: number } }
interface User { id: string; email: string; name: string; role: Role; token: string }

const URL_ = process.env.GATEWAY_URL ?? 'http://localhost:4000/graphql';
const ADMIN_EMAIL = process.env.ADMIN_EMAIL;
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;
const CUSTOMERS = Number(process.env.SEED_CUSTOMERS ?? 300);
const PASSWORD = process.env.SEED_PASSWORD ?? 'seed-password-1234';
const DOMAIN = process.env.SEED_EMAIL_DOMAIN ?? 'seed.crm.local';
/** Estimated rate-limit points one customer costs its rep (create, meeting, task, completion, approval, retries). */
const POINTS_PER_CUSTOMER = 5;
const CONCURRENCY = 4;

export class SeedError extends Error {}

let rateLimit: number | undefined;

async function gql<T = any>(query: string, variables: Record<string, unknown> = {}, token?: string): Promise<T> {
  const res = await fetch(URL_, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const limit = res.headers.get('ratelimit-limit');
  if (limit) rateLimit = Number(limit);
  const body = (await res.json().catch(() => ({ errors: [{ message: `HTTP ${res.status}` }] }))) as { data?: T; errors?: GqlError[] };
  if (body.errors?.length) {
    const e = body.errors[0]!;
    if (e.extensions?.code === 'RATE_LIMITED') {
      throw new SeedError(`${e.message}.\nThe seed spreads its work to stay within RATE_LIMIT_POINTS per user; this budget was spent (an earlier run?). Wait ${e.extensions.retryAfter ?? '?'} s, or seed a gateway started with RATE_LIMIT_ENABLED=false (development only).`);
    }
    const err = new Error(`${e.message}${e.extensions?.code ? ` (${e.extensions.code})` : ''}`) as Error & { code?: string };
    err.code = e.extensions?.code;
    throw err;
  }
  return body.data as T;
}

/** The first attempts of a write may find a domain that has not yet heard of the customer (events). */
async function retrying<T>(what: string, fn: () => Promise<T>, attempts = 40): Promise<T> {
  for (let i = 1; ; i += 1) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof SeedError || i >= attempts) throw new Error(`${what}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

const LOGIN = `mutation($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken user { id email name role } } }`;
const REGISTER = `mutation($input: RegisterInput!) { register(input: $input) { accessToken user { id email name role } } }`;

async function login(email: string, password: string): Promise<User> {
  const { login: p } = await gql(LOGIN, { email, password });
  return { ...p.user, token: p.accessToken };
}

async function seedUser(admin: User, role: Exclude<Role, 'ADMIN'>, name: string, email: string): Promise<User> {
  let user: User;
  try {
    const { register: p } = await gql(REGISTER, { input: { email, password: PASSWORD, name } });
    user = { ...p.user, token: p.accessToken };
  } catch (err) {
    if ((err as { code?: string }).code !== 'CONFLICT') throw err;
    user = await login(email, PASSWORD); // seeded by an earlier run
  }
  if (user.role === role) return user;
  await gql(`mutation($id: ID!, $role: Role!) { updateUser(id: $id, input: { role: $role }) { id } }`, { id: user.id, role }, admin.token);
  return login(email, PASSWORD); // a token carrying the new role
}

async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

const FIRST = ['Ada', 'Ben', 'Chloé', 'Dev', 'Eva', 'Femi', 'Gus', 'Hana', 'Ivo', 'Jia', 'Kai', 'Lena', 'Milo', 'Nora', 'Omar', 'Pia', 'Raj', 'Sara', 'Tom', 'Uma', 'Vik', 'Wen', 'Yara', 'Zoe'];
const LAST = ['Adler', 'Brook', 'Costa', 'Dahl', 'Evans', 'Fischer', 'Garcia', 'Holm', 'Ito', 'Jensen', 'Khan', 'Lund', 'Moreau', 'Novak', 'Okafor', 'Park'];
const COMPANY_A = ['Blue', 'North', 'Silver', 'Bright', 'Green', 'Iron', 'Clear', 'Swift', 'Grand', 'Prime', 'Alpine', 'Coastal'];
const COMPANY_B = ['Harbor', 'Ridge', 'Works', 'Capital', 'Foods', 'Logistics', 'Health', 'Energy', 'Labs', 'Partners', 'Textiles', 'Motors'];
const INDUSTRIES = ['Manufacturing', 'Retail', 'Healthcare', 'Energy', 'Finance', 'Logistics', 'Software', 'Food & Beverage'];
const SIZES = ['SMALL', 'MEDIUM', 'LARGE', 'ENTERPRISE'];
const PROFILES = ['CONSERVATIVE', 'MODERATE', 'AGGRESSIVE'];
const RISKS = ['LOW', 'MEDIUM', 'HIGH'];
const PRIORITIES = ['LOW', 'MEDIUM', 'HIGH', 'URGENT'];
const pick = <T>(xs: T[]): T => xs[randomInt(xs.length)]!;
const personName = (i: number) => `${FIRST[i % FIRST.length]} ${LAST[Math.floor(i / FIRST.length) % LAST.length]}`;
const days = (n: number) => new Date(Date.now() + n * 86_400_000).toISOString();

export interface SeedSummary {
  users: Record<Role, string[]>;
  customers: number;
  meetings: number;
  tasks: number;
  tasksCompleted: number;
  approvals: number;
  approved: number;
  rejected: number;
}

export async function seed(log: (line: string) => void = console.log): Promise<SeedSummary> {
  if (!ADMIN_EMAIL || !ADMIN_PASSWORD) throw new SeedError('Set ADMIN_EMAIL and ADMIN_PASSWORD to the values the gateway (npm start) was started with.');
  if (!Number.isInteger(CUSTOMERS) || CUSTOMERS < 1) throw new SeedError('SEED_CUSTOMERS must be a positive integer');
  let admin: User;
  try {
    admin = await login(ADMIN_EMAIL, ADMIN_PASSWORD);
  } catch (err) {
    if (err instanceof SeedError) throw err;
    throw new SeedError(`Cannot log in as ${ADMIN_EMAIL} at ${URL_}: ${(err as Error).message}. Is the gateway running (npm start) with the same ADMIN_EMAIL / ADMIN_PASSWORD?`);
  }
  if (admin.role !== 'ADMIN') throw new SeedError(`${ADMIN_EMAIL} is not an ADMIN`);
  await gql('{ me { id } }', {}, admin.token); // reads RateLimit-Limit (absent: rate limits off)

  // Enough reps that each stays well within its per-user budget (60% of it).
  const budget = rateLimit ?? Infinity;
  const reps = Math.max(5, Math.ceil((CUSTOMERS * POINTS_PER_CUSTOMER) / (0.6 * budget)));
  log(`seeding ${URL_}: ${CUSTOMERS} customers over ${reps} SALES reps (rate limit ${rateLimit ? `${rateLimit} points per user` : 'off'})`);

  const users: Record<Role, User[]> = { ADMIN: [admin], MANAGER: [], COMPLIANCE: [], SALES: [] };
  const plan: [Exclude<Role, 'ADMIN'>, number][] = [['MANAGER', 3], ['COMPLIANCE', 2], ['SALES', reps]];
  let n = 0;
  for (const [role, count] of plan) {
    const made = await Promise.all(Array.from({ length: count }, (_, i) => {
      const k = n + i;
      return seedUser(admin, role, personName(k), `${role.toLowerCase()}${String(i + 1).padStart(2, '0')}@${DOMAIN}`);
    }));
    n += count;
    users[role].push(...made);
  }
  log(`users: ${users.MANAGER.length} MANAGER, ${users.COMPLIANCE.length} COMPLIANCE, ${users.SALES.length} SALES (+ the ADMIN)`);

  const summary: SeedSummary = {
    users: Object.fromEntries(Object.entries(users).map(([r, us]) => [r, us.map((u) => u.email)])) as Record<Role, string[]>,
    customers: 0, meetings: 0, tasks: 0, tasksCompleted: 0, approvals: 0, approved: 0, rejected: 0,
  };
  const approvals: string[] = [];
  const stamp = Date.now().toString(36).slice(-4);

  await pool(users.SALES, CONCURRENCY, async (rep, r) => {
    const mine = Math.floor(CUSTOMERS / reps) + (r < CUSTOMERS % reps ? 1 : 0);
    const ids: string[] = [];
    for (let i = 0; i < mine; i += 1) {
      const name = `${pick(COMPANY_A)} ${pick(COMPANY_B)} ${stamp}-${r + 1}.${i + 1}`;
      const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
      const { createCustomer } = await gql(`mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`, {
        input: {
          name, email: `contact@${slug}.example`, phone: `+1 555 ${String(randomInt(1000000)).padStart(7, '0')}`,
          industry: pick(INDUSTRIES), size: pick(SIZES), investmentProfile: pick(PROFILES), riskTolerance: pick(RISKS),
        },
      }, rep.token);
      ids.push(createCustomer.id);
      summary.customers += 1;
    }
    // Then the activities: by now the other domains have (mostly) heard of these customers.
    for (const [i, customerId] of ids.entries()) {
      if (i % 10 < 7) {
        await retrying('recordMeeting', () => gql(`mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id } }`, {
          input: { customerId, startsAt: days(-randomInt(1, 60)), summary: pick(['Intro call', 'Portfolio review', 'Quarterly check-in', 'Site visit']), nextAction: pick(['Send proposal', 'Follow up', null]) },
        }, rep.token));
        summary.meetings += 1;
      }
      const { createTask } = await retrying('createTask', () => gql(`mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }`, {
        input: { customerId, title: pick(['Call back', 'Prepare offer', 'Update KYC documents', 'Schedule review']), priority: pick(PRIORITIES), dueAt: days(randomInt(-5, 30)) },
      }, rep.token));
      summary.tasks += 1;
      if (i % 5 < 2) {
        await gql(`mutation($id: ID!) { completeTask(id: $id) { id } }`, { id: createTask.id }, rep.token);
        summary.tasksCompleted += 1;
      }
      if (i % 3 === 0) {
        const { requestApproval } = await retrying('requestApproval', () => gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, {
          input: { customerId, title: pick(['Fee discount', 'Credit line increase', 'Custom mandate', 'Fast-track onboarding']), amount: randomInt(1, 500) * 100 },
        }, rep.token));
        approvals.push(requestApproval.id);
        summary.approvals += 1;
      }
    }
  });
  log(`customers: ${summary.customers}, meetings: ${summary.meetings}, tasks: ${summary.tasks} (${summary.tasksCompleted} completed), approval requests: ${summary.approvals}`);

  // Managers decide about 40% (approve) and 25% (reject); the rest stay pending.
  await pool(approvals, CONCURRENCY, async (id, i) => {
    const manager = users.MANAGER[i % users.MANAGER.length]!;
    const slot = i % 20;
    if (slot < 8) {
      await gql(`mutation($id: ID!) { approveRequest(id: $id, comment: "Approved (seed)") { id } }`, { id }, manager.token);
      summary.approved += 1;
    } else if (slot < 13) {
      await gql(`mutation($id: ID!) { rejectRequest(id: $id, comment: "Not this quarter (seed)") { id } }`, { id }, manager.token);
      summary.rejected += 1;
    }
  });
  log(`approvals decided: ${summary.approved} approved, ${summary.rejected} rejected, ${summary.approvals - summary.approved - summary.rejected} pending`);

  log('\nlogins (every seed user has the password below; the ADMIN keeps ADMIN_PASSWORD):');
  log(`  ADMIN       ${admin.email}`);
  for (const role of ['MANAGER', 'COMPLIANCE', 'SALES'] as const) for (const u of users[role]) log(`  ${role.padEnd(11)} ${u.email}  (${u.name})`);
  log(`  password    ${PASSWORD}`);
  return summary;
}

if (require.main === module) {
  seed().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
