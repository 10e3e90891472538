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
 * Variables (the script's own; the services' configuration is packages/config/src/config.ts):
 *   GATEWAY_URL (http://localhost:4000/graphql), ADMIN_EMAIL, ADMIN_PASSWORD (required),
 *   SEED_CUSTOMERS (300), SEED_PASSWORD (seed-password-1234), SEED_EMAIL_DOMAIN (seed.crm.local).
 */
import { randomInt } from 'node:crypto';
import { retry } from '@crm/errors';
import {
  ApproveRequestDocument,
  CompleteTaskDocument,
  CreateCustomerDocument,
  CreateTaskDocument,
  MeDocument,
  RecordMeetingDocument,
  RegisterDocument,
  RejectRequestDocument,
  RequestApprovalDocument,
  SetUserRoleDocument,
  type CompanySize,
  type InvestmentProfile,
  type LoginMutation,
  type RiskTolerance,
  type TaskPriority,
} from '../../../clients/src/gql/graphql';
import { crmClient, GraphQLRequestError, login as clientLogin, type CrmClient } from '../../../clients/src/cli';

type Role = 'ADMIN' | 'MANAGER' | 'SALES' | 'COMPLIANCE';
interface User {
  id: string;
  email: string;
  name: string;
  role: Role;
  client: CrmClient;
}

export interface SeedOptions {
  url: string;
  adminEmail: string | undefined;
  adminPassword: string | undefined;
  customers: number;
  password: string;
  domain: string;
}

/** The script's own variables (see above). */
export function seedOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): SeedOptions {
  return {
    url: env.GATEWAY_URL ?? 'http://localhost:4000/graphql',
    adminEmail: env.ADMIN_EMAIL,
    adminPassword: env.ADMIN_PASSWORD,
    customers: Number(env.SEED_CUSTOMERS ?? 300),
    password: env.SEED_PASSWORD ?? 'seed-password-1234',
    domain: env.SEED_EMAIL_DOMAIN ?? 'seed.crm.local',
  };
}

/** Estimated rate-limit points one customer costs its rep (create, meeting, task, completion, approval, retries). */
const POINTS_PER_CUSTOMER = 5;
const CONCURRENCY = 4;

export class SeedError extends Error {}

/**
 * A typed client (clients/) for one seed user. It notes the rate limit the gateway announces
 * (RateLimit-Limit) and turns RATE_LIMITED into a SeedError that says what to do.
 */
function seedClient(url: string, limits: { rateLimit?: number }): CrmClient {
  return crmClient(url, undefined, {
    onResponse: ({ headers }) => {
      const limit = headers.get('ratelimit-limit');
      if (limit) limits.rateLimit = Number(limit);
    },
    mapError: (err) =>
      err.code === 'RATE_LIMITED'
        ? new SeedError(
            `${err.message}.\nThe seed spreads its work to stay within RATE_LIMIT_POINTS per user; this budget was spent (an earlier run?). Wait ${String(err.errors[0]?.extensions?.retryAfter ?? '?')} s, or seed a gateway started with RATE_LIMIT_ENABLED=false (development only).`,
          )
        : err,
  });
}

/** The first attempts of a write may find a domain that has not yet heard of the customer (events). */
function retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
  return retry(fn, { retries: 30, baseDelayMs: 100, maxDelayMs: 1000, shouldRetry: (err) => !(err instanceof SeedError) }).catch((err: unknown) => {
    throw err instanceof SeedError ? err : new Error(`${what}: ${(err as Error).message}`);
  });
}

function asUser(client: CrmClient, payload: LoginMutation['login']): User {
  client.token = payload.accessToken;
  return { ...payload.user, client };
}

async function login(client: CrmClient, email: string, password: string): Promise<User> {
  return asUser(client, await clientLogin(client, email, password));
}

async function seedUser(admin: User, o: SeedOptions, limits: { rateLimit?: number }, role: Exclude<Role, 'ADMIN'>, name: string, email: string): Promise<User> {
  const client = seedClient(o.url, limits);
  let user: User;
  try {
    user = asUser(client, (await client.request(RegisterDocument, { input: { email, password: o.password, name } })).register);
  } catch (err) {
    if (!(err instanceof GraphQLRequestError) || err.code !== 'CONFLICT') throw err;
    user = await login(client, email, o.password); // seeded by an earlier run
  }
  if (user.role === role) return user;
  await admin.client.request(SetUserRoleDocument, { id: user.id, role });
  return login(client, email, o.password); // a token carrying the new role
}

async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

const FIRST = [
  'Ada',
  'Ben',
  'Chloé',
  'Dev',
  'Eva',
  'Femi',
  'Gus',
  'Hana',
  'Ivo',
  'Jia',
  'Kai',
  'Lena',
  'Milo',
  'Nora',
  'Omar',
  'Pia',
  'Raj',
  'Sara',
  'Tom',
  'Uma',
  'Vik',
  'Wen',
  'Yara',
  'Zoe',
];
const LAST = ['Adler', 'Brook', 'Costa', 'Dahl', 'Evans', 'Fischer', 'Garcia', 'Holm', 'Ito', 'Jensen', 'Khan', 'Lund', 'Moreau', 'Novak', 'Okafor', 'Park'];
const COMPANY_A = ['Blue', 'North', 'Silver', 'Bright', 'Green', 'Iron', 'Clear', 'Swift', 'Grand', 'Prime', 'Alpine', 'Coastal'];
const COMPANY_B = ['Harbor', 'Ridge', 'Works', 'Capital', 'Foods', 'Logistics', 'Health', 'Energy', 'Labs', 'Partners', 'Textiles', 'Motors'];
const INDUSTRIES = ['Manufacturing', 'Retail', 'Healthcare', 'Energy', 'Finance', 'Logistics', 'Software', 'Food & Beverage'];
const SIZES: CompanySize[] = ['SMALL', 'MEDIUM', 'LARGE', 'ENTERPRISE'];
const PROFILES: InvestmentProfile[] = ['CONSERVATIVE', 'MODERATE', 'AGGRESSIVE'];
const RISKS: RiskTolerance[] = ['LOW', 'MEDIUM', 'HIGH'];
const PRIORITIES: TaskPriority[] = ['LOW', 'MEDIUM', 'HIGH', 'URGENT'];
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

export async function seed(o: SeedOptions = seedOptionsFromEnv(), log: (line: string) => void = console.log): Promise<SeedSummary> {
  if (!o.adminEmail || !o.adminPassword) throw new SeedError('Set ADMIN_EMAIL and ADMIN_PASSWORD to the values the gateway (npm start) was started with.');
  if (!Number.isInteger(o.customers) || o.customers < 1) throw new SeedError('SEED_CUSTOMERS must be a positive integer');
  const limits: { rateLimit?: number } = {};
  let admin: User;
  try {
    admin = await login(seedClient(o.url, limits), o.adminEmail, o.adminPassword);
  } catch (err) {
    if (err instanceof SeedError) throw err;
    throw new SeedError(`Cannot log in as ${o.adminEmail} at ${o.url}: ${(err as Error).message}. Is the gateway running (npm start) with the same ADMIN_EMAIL / ADMIN_PASSWORD?`);
  }
  if (admin.role !== 'ADMIN') throw new SeedError(`${o.adminEmail} is not an ADMIN`);
  await admin.client.request(MeDocument, {}); // reads RateLimit-Limit (absent: rate limits off)

  // Enough reps that each stays well within its per-user budget (60% of it).
  const { rateLimit } = limits;
  const budget = rateLimit ?? Infinity;
  const reps = Math.max(5, Math.ceil((o.customers * POINTS_PER_CUSTOMER) / (0.6 * budget)));
  log(`seeding ${o.url}: ${o.customers} customers over ${reps} SALES reps (rate limit ${rateLimit ? `${rateLimit} points per user` : 'off'})`);

  const users: Record<Role, User[]> = { ADMIN: [admin], MANAGER: [], COMPLIANCE: [], SALES: [] };
  const plan: [Exclude<Role, 'ADMIN'>, number][] = [
    ['MANAGER', 3],
    ['COMPLIANCE', 2],
    ['SALES', reps],
  ];
  let n = 0;
  for (const [role, count] of plan) {
    const made = await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const k = n + i;
        return seedUser(admin, o, limits, role, personName(k), `${role.toLowerCase()}${String(i + 1).padStart(2, '0')}@${o.domain}`);
      }),
    );
    n += count;
    users[role].push(...made);
  }
  log(`users: ${users.MANAGER.length} MANAGER, ${users.COMPLIANCE.length} COMPLIANCE, ${users.SALES.length} SALES (+ the ADMIN)`);

  const summary: SeedSummary = {
    users: Object.fromEntries(Object.entries(users).map(([r, us]) => [r, us.map((u) => u.email)])) as Record<Role, string[]>,
    customers: 0,
    meetings: 0,
    tasks: 0,
    tasksCompleted: 0,
    approvals: 0,
    approved: 0,
    rejected: 0,
  };
  const approvals: string[] = [];
  const stamp = Date.now().toString(36).slice(-4);

  await pool(users.SALES, CONCURRENCY, async (rep, r) => {
    const mine = Math.floor(o.customers / reps) + (r < o.customers % reps ? 1 : 0);
    const ids: string[] = [];
    for (let i = 0; i < mine; i += 1) {
      const name = `${pick(COMPANY_A)} ${pick(COMPANY_B)} ${stamp}-${r + 1}.${i + 1}`;
      const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
      const { createCustomer } = await rep.client.request(CreateCustomerDocument, {
        input: {
          name,
          email: `contact@${slug}.example`,
          phone: `+1 555 ${String(randomInt(1000000)).padStart(7, '0')}`,
          industry: pick(INDUSTRIES),
          size: pick(SIZES),
          investmentProfile: pick(PROFILES),
          riskTolerance: pick(RISKS),
        },
      });
      ids.push(createCustomer.id);
      summary.customers += 1;
    }
    // Then the activities: by now the other domains have (mostly) heard of these customers.
    for (const [i, customerId] of ids.entries()) {
      if (i % 10 < 7) {
        await retrying('recordMeeting', () =>
          rep.client.request(RecordMeetingDocument, {
            input: {
              customerId,
              startsAt: days(-randomInt(1, 60)),
              summary: pick(['Intro call', 'Portfolio review', 'Quarterly check-in', 'Site visit']),
              nextAction: pick(['Send proposal', 'Follow up', null]),
            },
          }),
        );
        summary.meetings += 1;
      }
      const { createTask } = await retrying('createTask', () =>
        rep.client.request(CreateTaskDocument, {
          input: { customerId, title: pick(['Call back', 'Prepare offer', 'Update KYC documents', 'Schedule review']), priority: pick(PRIORITIES), dueAt: days(randomInt(-5, 30)) },
        }),
      );
      summary.tasks += 1;
      if (i % 5 < 2) {
        await rep.client.request(CompleteTaskDocument, { id: createTask.id });
        summary.tasksCompleted += 1;
      }
      if (i % 3 === 0) {
        const { requestApproval } = await retrying('requestApproval', () =>
          rep.client.request(RequestApprovalDocument, {
            input: { customerId, title: pick(['Fee discount', 'Credit line increase', 'Custom mandate', 'Fast-track onboarding']), amount: randomInt(1, 500) * 100 },
          }),
        );
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
      await manager.client.request(ApproveRequestDocument, { id, comment: 'Approved (seed)' });
      summary.approved += 1;
    } else if (slot < 13) {
      await manager.client.request(RejectRequestDocument, { id, comment: 'Not this quarter (seed)' });
      summary.rejected += 1;
    }
  });
  log(`approvals decided: ${summary.approved} approved, ${summary.rejected} rejected, ${summary.approvals - summary.approved - summary.rejected} pending`);

  log('\nlogins (every seed user has the password below; the ADMIN keeps ADMIN_PASSWORD):');
  log(`  ADMIN       ${admin.email}`);
  for (const role of ['MANAGER', 'COMPLIANCE', 'SALES'] as const) for (const u of users[role]) log(`  ${role.padEnd(11)} ${u.email}  (${u.name})`);
  log(`  password    ${o.password}`);
  return summary;
}

if (require.main === module) {
  seed(seedOptionsFromEnv()).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
