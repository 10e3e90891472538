/**
 * Every environment variable of the platform, declared once: its schema, its default as the README
 * shows it and what it does. Variables come in pieces (what every service shares, what every HTTP
 * service reads, what every subgraph reads, and one piece per service for its own); SERVICE_PIECES says
 * which pieces each service reads. A service validates only its pieces (../config.ts
 * readServiceConfig), and the README's tables are written from this file (deploy/tools/config-docs.ts,
 * `npm run codegen`), so neither can drift from the code.
 */
import { z } from 'zod';

/**
 * The one way a boolean is read from the environment: zod's stringbool (true/1/yes/on/y/enabled or
 * false/0/no/off/n/disabled, any case); anything else is a configuration error naming the
 * variable. Unset or empty: `dflt` (undefined: "not set", the caller decides).
 */
const optionalFlag = z.preprocess((v) => (v === '' ? undefined : v), z.stringbool().optional());
const flag = (dflt: boolean) => optionalFlag.transform((v) => v ?? dflt);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));
const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
const int = () => z.coerce.number().int();

/** One row of the README's tables: one variable, or a few read together, with their default and meaning. */
export interface Row<V extends Record<string, z.ZodType> = Record<string, z.ZodType>> {
  vars: V;
  /** Documented but read outside the schema (name patterns, variables passed on to a library or a child process). */
  names?: string[];
  default: string;
  doc: string;
}
const row = <V extends Record<string, z.ZodType>>(vars: V, dflt: string, doc: string): Row<V> => ({ vars, default: dflt, doc });
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- a note row declares no variables: {} is the empty shape zod's object() takes
const note = (names: string[], dflt: string, doc: string): Row<{}> => ({ vars: {}, names, default: dflt, doc });

/** Every service, the launcher included: mode, logs, keys' development home, telemetry, the database server and the event bus. */
const shared = [
  row(
    { NODE_ENV: z.enum(['development', 'production', 'test']).default('development') },
    'development',
    '`production` masks errors, turns off introspection and Sandbox, and requires real secrets',
  ),
  row({ LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }, 'info', 'pino level'),
  row(
    { LAUNCHER: z.enum(['none', 'ipc']).default('none') },
    'none',
    "set to `ipc` by `npm start`'s multi-process mode for the services it forks (readiness, peers, the services' states); leave unset",
  ),
  row(
    { DATA_DIR: z.string().default('.data') },
    '.data',
    'the embedded Postgres cluster (`DATA_DIR/postgres`), the composed supergraph and the development keys (`DATA_DIR/keys/`) (`memory`: a throwaway cluster in a temporary directory, keys in memory)',
  ),
  row({ POSTGRES_URL: optionalString }, '–', 'your Postgres; unset: `npm start` runs an embedded Postgres server under `DATA_DIR`'),
  note(['<SUBGRAPH>_DATABASE_URL'], '–', "one subgraph's own database URL (e.g. `SALES_ACTIVITY_DATABASE_URL`)"),
  row(
    {
      DATABASE_PREFIX: z
        .string()
        .regex(/^[a-z][a-z0-9_]*$/)
        .default('crm_'),
    },
    'crm_',
    'database names are `<prefix><subgraph>`',
  ),
  row({ KAFKA_BROKERS: list }, '–', 'comma-separated brokers; unset: the event log in Postgres ([docs/event-log.md](docs/event-log.md))'),
  note(['EVENTS_DATABASE_URL'], '`<prefix>events` on `POSTGRES_URL`', 'the database of the event log in Postgres (without Kafka)'),
  row({ KAFKA_CLIENT_ID: optionalString }, 'crm-<service>', 'client id'),
  row({ KAFKA_SSL: flag(false) }, 'false', 'TLS to the brokers'),
  row(
    { KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512', '']).default('') },
    '–',
    '`plain`, `scram-sha-256` or `scram-sha-512` (Upstash, Confluent Cloud, Event Hubs)',
  ),
  row({ KAFKA_USERNAME: optionalString, KAFKA_PASSWORD: optionalString }, '–', 'SASL credentials (Event Hubs: `$ConnectionString` / the connection string)'),
  row(
    {
      KAFKA_NAMESPACE: z
        .string()
        .regex(/^[a-zA-Z0-9._-]*$/)
        .default(''),
    },
    '–',
    'prefix of topics and consumer groups (share one cluster between environments)',
  ),
  row({ KAFKA_TOPIC_PARTITIONS: int().min(1).default(3) }, '3', 'partitions of provisioned topics (DLQs get 1)'),
  row(
    {
      KAFKA_TOPIC_RETENTION_MS: int()
        .min(60_000)
        .default(7 * 86_400_000),
    },
    '604800000',
    'retention of provisioned topics (7 days)',
  ),
  row(
    {
      KAFKA_DLQ_RETENTION_MS: int()
        .min(60_000)
        .default(30 * 86_400_000),
    },
    '30 days',
    'retention of the `<topic>.dlq` topics',
  ),
  row(
    { EVENT_BUS: z.enum(['auto', 'kafka', 'postgres', 'memory']).default('auto') },
    'auto',
    '`memory` forces the in-process bus, `kafka` requires brokers, `postgres` the event log in Postgres',
  ),
  row(
    { KAFKA_SESSION_TIMEOUT_MS: int().min(1000).max(300_000).default(6000), KAFKA_HEARTBEAT_INTERVAL_MS: int().min(100).max(60_000).default(1000) },
    '6000 / 1000',
    "consumer group session and heartbeats: a crashed replica's partitions move after the session ([docs/consumer-takeover.md](docs/consumer-takeover.md))",
  ),
  row({ KAFKA_GROUP_INSTANCE_ID: optionalString }, '–', 'static group membership: a stable, unique name per replica (the pod name in `deploy/`)'),
  row(
    { OTEL_EXPORTER_OTLP_ENDPOINT: optionalString, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalString },
    '–',
    'where spans go (OTLP over HTTP, e.g. `http://localhost:4318`); unset: no spans are recorded (see [Telemetry](#telemetry))',
  ),
  row({ OTEL_TRACES_EXPORTER: z.enum(['otlp', 'console', 'none', '']).default('') }, 'otlp when an endpoint is set', '`console` prints spans, `none` turns tracing off'),
  row(
    { OTEL_TRACES_SAMPLER: optionalString, OTEL_TRACES_SAMPLER_ARG: optionalString },
    'parentbased_always_on',
    'sampling, read by the OpenTelemetry SDK (e.g. `parentbased_traceidratio` / `0.1`)',
  ),
  row({ OTEL_SERVICE_NAME: optionalString, OTEL_SDK_DISABLED: flag(false) }, 'crm-<service> / false', 'service name of the spans; `true` disables tracing'),
] as const;

/** Every service that serves HTTP: the gateway and each subgraph. */
const http = [
  row({ PORT: int().min(0).max(65535).default(4000), HOST: z.string().default('0.0.0.0') }, '4000 / 0.0.0.0', 'where the gateway (or a lone subgraph) listens'),
  row(
    { METRICS_TOKEN: optionalString },
    '–',
    'bearer token Prometheus sends for `/metrics`; unset: `/metrics` is open outside production and off in production (24+ random characters)',
  ),
  row({ DEBUG_ERRORS: flag(false) }, 'false', 'stack traces in GraphQL error responses (any mode); off: no stack or file paths reach a client'),
  row({ MAX_BODY_BYTES: int().min(1024).default(1_000_000) }, '1000000', 'request body limit (413 above)'),
  row(
    { HTTP_HEADERS_TIMEOUT_MS: int().min(100).max(600_000).default(10_000), HTTP_REQUEST_TIMEOUT_MS: int().min(100).max(3_600_000).default(30_000) },
    '10000 / 30000',
    'a client must send its request headers, and then its whole request, within these (else 408 and the connection is closed): slow clients (slowloris) cannot hold connections; WebSocket connections are not affected once upgraded',
  ),
  row(
    { SHUTDOWN_GRACE_MS: int().min(0).max(600_000).default(10_000) },
    '10000',
    'on stop, a server refuses new connections at once and gives requests in flight this long to finish before cutting what is left',
  ),
] as const;

/** Every subgraph (kit subgraph.ts): its database, outbox and inbox, read-through to peers, and the keys it verifies and signs with. */
const subgraph = [
  row({ GATEWAY_PUBLIC_KEYS: optionalString }, 'generated (dev)', 'JWKS every subgraph verifies forwarded identities with; required in production'),
  row(
    { SERVICE_SIGNING_KEY: optionalString, SERVICE_PUBLIC_KEYS: optionalString },
    'generated (dev)',
    "every subgraph: its own key (kid `<name>:…`) for read-through calls, and its peers' public keys; required in production. Development keys: `DATA_DIR/keys/`, in memory with `DATA_DIR=memory`; `npm run keys` makes a production set",
  ),
  row({ DATABASE_POOL_MAX: int().min(1).max(200).default(10) }, '10', 'connections per subgraph database and process (replicas × this must fit Postgres `max_connections`)'),
  row(
    {
      DATABASE_STATEMENT_TIMEOUT_MS: int().min(0).default(30_000),
      DATABASE_LOCK_TIMEOUT_MS: int().min(0).default(10_000),
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: int().min(0).default(30_000),
    },
    '30000 / 10000 / 30000',
    'set on every database connection (0: off)',
  ),
  row({ OUTBOX_POLL_MS: int().min(10).default(500) }, '500', 'relay poll interval (commits wake it at once anyway)'),
  row(
    { OUTBOX_LEASE_MS: int().min(1000).max(600_000).default(10_000), OUTBOX_SEND_TIMEOUT_MS: int().min(100).max(300_000).default(5000) },
    '10000 / 5000',
    "rows a relay claims are its own this long (a frozen or dead relay's go to another replica after it); longest wait for the broker's acknowledgement, below the lease ([docs/events-and-sagas.md](docs/events-and-sagas.md))",
  ),
  row({ EVENT_MAX_BYTES: int().min(1024).default(1_000_000) }, '1000000', "largest event accepted at write time (`PAYLOAD_TOO_LARGE` beyond); the relay's batch byte cap"),
  row(
    {
      OUTBOX_RETENTION_MS: int()
        .min(60_000)
        .default(3 * 86_400_000),
      INBOX_RETENTION_MS: int()
        .min(60_000)
        .default(45 * 86_400_000),
    },
    '3 days / 45 days',
    "age after which sent outbox rows / inbox rows are deleted (keep the inbox's above Kafka retention + the replay window)",
  ),
  row(
    { PEER_TIMEOUT_MS: int().min(100).max(30_000).default(5000) },
    '5000',
    "read-through: a write that names another domain's entity (a customer, a rep) asks its owner, since the local copy may not have it yet or may still show it as it was before a deletion or change; when the owner does not answer in this time, the local copy decides",
  ),
  note(
    ['<SUBGRAPH>_URL'],
    'supergraph.yaml',
    "where a subgraph answers (e.g. `SALES_ACTIVITY_URL`): the gateway's routing at composition, and each subgraph's read-through to its peers",
  ),
] as const;

const gateway = [
  row({ GATEWAY_SIGNING_KEY: optionalString }, 'generated (dev)', 'gateway only: its private key for the identity it forwards; required in production'),
  row({ AUTH_PUBLIC_KEYS: optionalString }, 'generated (dev)', "JWKS of auth's public keys (two during a key roll); required in production"),
  row({ JWT_ISSUER: z.string().default('crm-auth'), JWT_AUDIENCE: z.string().default('crm-api') }, 'crm-auth / crm-api', 'checked on every token'),
  row({ ACCESS_TOKEN_TTL_SECONDS: int().min(10).max(86_400).default(900) }, '900', 'access token lifetime (how long a revoked token stays on the denylist)'),
  row(
    { GATEWAY_WORKERS: int().min(1).max(64).default(1) },
    '1',
    'gateway processes sharing its port (`node:cluster`; a dead worker is replaced), in `npm start` and the gateway container',
  ),
  row({ SUPERGRAPH_PATH: z.string().default('supergraph.graphql') }, 'supergraph.graphql', 'the composed supergraph the standalone gateway serves and watches'),
  row({ REDIS_URL: optionalString }, '–', 'Redis for rate limits, the token denylist and APQ; unset: memory'),
  row({ CORS_ORIGINS: list }, '–', 'allowed browser origins, comma-separated'),
  row(
    { INTROSPECTION: optionalFlag, SANDBOX: optionalFlag },
    'on unless `NODE_ENV=production`',
    'override per environment (`SANDBOX`: the Apollo Sandbox page, see [Apollo Sandbox](#apollo-sandbox))',
  ),
  row(
    { SUBGRAPH_DEDUPE: flag(true) },
    'true',
    'identical subgraph query fetches in flight at once (same document, variables and identity) share one round trip and one parsed answer (the engine copies on write)',
  ),
  note(
    ['APOLLO_TELEMETRY_DISABLED'],
    'true',
    "Apollo Gateway's own anonymous usage metrics to Apollo (and its cloud metadata probes at start-up); the gateway sets it to `true` unless you set it",
  ),
  row(
    { INBOUND_DEDUPE: flag(false) },
    'false',
    'opt-in: identical queries (same caller, document hash, variables, operation name and Origin) in flight at once share one execution, after every request passed validation, limits, the denylist and its own rate-limit charge (`gateway/src/features/inbound-dedupe.ts`); never mutations or subscriptions',
  ),
  row(
    { SUBGRAPH_TIMEOUT_MS: int().min(1).max(600_000).default(30_000) },
    '30000',
    "longest wait of the gateway for one subgraph fetch; then that part of the answer is `null` with `SERVICE_UNAVAILABLE` (`reason: SUBGRAPH_TIMEOUT`). Subgraphs receive only the headers listed in `packages/runtime/src/subgraph-call.ts` (the signed identity and the signed trace context), never the client's own",
  ),
  row(
    { RATE_LIMIT_POINTS: int().min(1).default(100), RATE_LIMIT_WINDOW_SECONDS: int().min(1).default(900) },
    '100 / 900',
    'rate limit budget per user (per IP when anonymous), see [docs/gateway-protection.md](docs/gateway-protection.md)',
  ),
  row({ RATE_LIMIT_COST_PER_POINT: int().min(1).default(50) }, '50', 'estimated cost units per rate-limit point (`points = max(1, ceil(cost / this))`)'),
  row({ RATE_LIMIT_ENABLED: optionalFlag }, 'on, off when `NODE_ENV=test`', '`true` / `false` forces rate limits on or off (the cost limit is always on)'),
  row({ RATE_LIMIT_PREFIX: z.string().default('crm:gw:') }, 'crm:gw:', 'Redis key prefix of rate limits and the token denylist (`KAFKA_NAMESPACE` is appended)'),
  row({ MAX_COST: int().min(1).default(5000), MAX_DEPTH: int().min(1).default(12), MAX_ALIASES: int().min(1).default(30) }, '5000 / 12 / 30', 'operation limits'),
  row({ MAX_DIRECTIVES: int().min(1).default(20), MAX_TOKENS: int().min(100).default(2000) }, '20 / 2000', 'operation limits: directives per operation, lexer tokens per document'),
  row(
    { LOGIN_FAILS_PER_ACCOUNT_IP: int().min(1).default(5), LOGIN_FAILS_WINDOW_SECONDS: int().min(1).default(900) },
    '5 / 900',
    'failed logins per account and IP within the window before a `LOGIN_BLOCK_SECONDS` block',
  ),
  row({ LOGIN_FAILS_PER_IP_PER_DAY: int().min(1).default(100) }, '100', "failed logins per IP per day (any accounts) before a one-day block of that IP's logins"),
  row({ LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT: int().min(1).default(20) }, '20', 'consecutive failed logins of one account (any IP; reset by a success) before a block'),
  row({ LOGIN_BLOCK_SECONDS: int().min(1).max(86_400).default(900) }, '900', 'how long a login block lasts (max 86400)'),
  note(
    ['(same numbers)'],
    '',
    '`requestPasswordReset` (every request, per email+IP, IP and email), `resetPassword` (refused tokens, per IP) and `changePassword` (wrong current password, per user+IP and user) are limited like login, on counters of their own (`gateway/src/features/password-protection.ts`)',
  ),
  row(
    { TRUST_PROXY_HOPS: int().min(0).max(10).default(0) },
    '0',
    'reverse proxies in front of the gateway: the client IP is the `X-Forwarded-For` entry this many hops from the right',
  ),
  row(
    { TRUSTED_DOCUMENTS: z.enum(['off', 'allow', 'only']).default('off') },
    'off',
    '`allow`: operations of the manifest may be sent by hash alone, anything else still runs; `only`: accept only operations from the manifest (see [Typed clients](#typed-clients))',
  ),
  row(
    { TRUSTED_DOCUMENTS_PATH: z.string().default('clients/persisted-operations.json') },
    'clients/persisted-operations.json',
    'the trusted-documents manifest `{ "<sha256>": "<query>" }`, written by `npm run codegen`',
  ),
  row({ SUBSCRIPTION_QUEUE_LIMIT: int().min(1).default(100) }, '100', 'live subscriptions: events pending per subscription before the client is closed as too slow'),
  row({ SUBSCRIPTION_MAX_BUFFERED_BYTES: int().min(1024).default(1_048_576) }, '1048576', "bytes buffered on a subscriber's socket beyond which it is closed as too slow"),
  row({ SUBSCRIPTIONS_PER_CONNECTION: int().min(1).default(20) }, '20', 'subscriptions one WebSocket connection may hold'),
  row(
    { SUBSCRIPTION_CONNECTIONS_PER_USER: int().min(1).default(10), SUBSCRIPTION_CONNECTIONS_PER_IP: int().min(1).default(100) },
    '10 / 100',
    'WebSocket connections one user / one client IP may hold open on a gateway replica',
  ),
  row(
    { SUBSCRIPTION_RESOLUTIONS_PER_USER_PER_EVENT: int().min(1).default(20) },
    '20',
    'distinct subscriptions of one user resolved for one event; beyond it the event is not delivered to the rest',
  ),
  row({ SUBSCRIPTION_RESOLVE_CONCURRENCY: int().min(1).default(16) }, '16', 'entity resolutions (federated queries) run at once for one event'),
  row(
    { SUBSCRIPTION_RESOLVE_TIMEOUT_MS: int().min(1).default(10_000) },
    '10000',
    "one live resolution (an event's entity through the subgraphs) not answered within this time is skipped",
  ),
] as const;

const auth = [
  row({ AUTH_SIGNING_KEY: optionalString }, 'generated (dev)', 'auth only: its private key (EC P-256 JWK with `kid`) for access tokens (ES256); required in production'),
  row({ AUTH_PUBLIC_KEYS: optionalString }, '–', "auth's previous public keys it keeps publishing during a key roll (JWKS)"),
  row({ JWT_ISSUER: z.string().default('crm-auth'), JWT_AUDIENCE: z.string().default('crm-api') }, 'crm-auth / crm-api', 'written into every access token'),
  row({ ACCESS_TOKEN_TTL_SECONDS: int().min(10).max(86_400).default(900) }, '900', 'access token lifetime'),
  row(
    {
      REFRESH_TOKEN_TTL_SECONDS: int()
        .min(60)
        .default(30 * 86_400),
    },
    '2592000',
    'refresh token lifetime (single use, rotated)',
  ),
  row(
    { REGISTRATION_POLICY: z.enum(['open', 'approval', 'closed']).optional() },
    'open; approval in production',
    'who may create an account with `register`: `open` (anyone), `approval` (the account stays inactive until an ADMIN approves it), `closed` (an ADMIN creates accounts with `createUser`)',
  ),
  row(
    { ADMIN_EMAIL: optionalString, ADMIN_PASSWORD: optionalString },
    '–',
    'create this ADMIN on start if missing (production: a password of 12+ characters that is no placeholder)',
  ),
  row(
    { MAIL_URL: optionalString.refine((v) => v === undefined || /^smtps?:\/\/[^/]/.test(v), 'must be an smtp:// or smtps:// URL') },
    '–',
    'outgoing mail (password resets), one URL: `smtp://user:pass@host:587` or `smtps://…:465` (nodemailer options as query parameters); unset: mails are `.eml` files under `DATA_DIR/mail` and, in development only, their links are logged',
  ),
  row({ MAIL_FROM: z.string().default('CRM <no-reply@crm.localhost>') }, 'CRM <no-reply@crm.localhost>', 'sender of those mails'),
  row(
    { MAIL_POLL_MS: int().min(10).default(1000), MAIL_RETRY_MAX_MS: int().min(100).default(300_000) },
    '1000 / 300000',
    "auth's mail outbox: poll period; a failed send is retried with backoff (1 s, 2 s, 4 s … up to this), never dropped",
  ),
  row({ PASSWORD_RESET_TTL_SECONDS: int().min(60).max(86_400).default(1800) }, '1800', 'a reset token works once, within this time'),
  row(
    { RESET_PAGE_URL: z.string().url().default('http://localhost:4000/reset-password') },
    'http://localhost:4000/reset-password',
    "the page the reset mail links to, with `#token=…` (the fragment reaches no server log); it calls `resetPassword`. The default is the gateway's own page (a form, `gateway/src/features/reset-page.ts`); in production set it to your app's page, or to the gateway's public address + `/reset-password`",
  ),
] as const;

const analytics = [
  row({ REDIS_URL: optionalString }, '–', 'Redis for the report cache; unset: memory'),
  row(
    {
      SAGA_TIMEOUT_MS: int()
        .min(1000)
        .default(15 * 60_000),
    },
    '15 min',
    'a saga not finished by then is `TIMED_OUT` (a late step still finishes it)',
  ),
] as const;

const salesActivity = [row({ DUE_SOON_INTERVAL_MS: int().min(100).default(60_000) }, '60000', "the due-soon job's period")] as const;

/** The launcher (apps/platform): it runs every service (in its own process or all in one), so it reads all of the above too. */
const platform = [
  row(
    { STACK_PROCESSES: z.enum(['single', 'multi']).default('multi') },
    'multi',
    '`npm start`: `multi` runs the gateway and each subgraph in a process of its own, `single` all in one process',
  ),
  note(['EMBEDDED_POSTGRES_USER'], 'postgres', 'as root: the unprivileged user the embedded server runs as (created if missing)'),
] as const;

/** The pieces, in the README's order, with the heading each table gets. */
export const PIECES = {
  shared: { title: 'Every service', rows: shared },
  http: { title: 'Every HTTP service (the gateway and each subgraph)', rows: http },
  subgraph: { title: 'Every subgraph', rows: subgraph },
  gateway: { title: 'Gateway', rows: gateway },
  auth: { title: 'Auth', rows: auth },
  analytics: { title: 'Analytics', rows: analytics },
  salesActivity: { title: 'Sales activity', rows: salesActivity },
  platform: { title: 'The launcher (`apps/platform`: `npm start`, migrations, the Kafka CLIs)', rows: platform },
} as const;
export type Piece = keyof typeof PIECES;

/**
 * What each service reads. The launcher runs every service in its own process (each validating its
 * own) or all in one (STACK_PROCESSES=single, the test stacks): it declares every piece.
 */
export const SERVICE_PIECES = {
  gateway: ['shared', 'http', 'gateway'],
  auth: ['shared', 'http', 'subgraph', 'auth'],
  customer: ['shared', 'http', 'subgraph'],
  'sales-activity': ['shared', 'http', 'subgraph', 'salesActivity'],
  opportunity: ['shared', 'http', 'subgraph'],
  analytics: ['shared', 'http', 'subgraph', 'analytics'],
  platform: ['shared', 'http', 'subgraph', 'gateway', 'auth', 'analytics', 'salesActivity', 'platform'],
} as const satisfies Record<string, readonly Piece[]>;
export type ServiceName = keyof typeof SERVICE_PIECES;

/**
 * The secrets each service must be given in production, and only those (docs/security.md): auth signs
 * access tokens; the gateway verifies them and signs what it forwards; every subgraph verifies the
 * gateway's and its peers' signatures and signs its own read-through calls.
 */
export const SERVICE_SECRETS = {
  gateway: ['GATEWAY_SIGNING_KEY', 'AUTH_PUBLIC_KEYS'],
  auth: ['AUTH_SIGNING_KEY', 'GATEWAY_PUBLIC_KEYS', 'SERVICE_SIGNING_KEY', 'SERVICE_PUBLIC_KEYS'],
  subgraph: ['GATEWAY_PUBLIC_KEYS', 'SERVICE_SIGNING_KEY', 'SERVICE_PUBLIC_KEYS'],
} as const;

type Merge<R extends readonly Row[]> = R[number] extends infer E ? (E extends Row<infer V> ? V : never) : never;
type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
type Shape = UnionToIntersection<Merge<(typeof PIECES)[Piece]['rows']>>;

function shapeOf(pieces: readonly Piece[]): Record<string, z.ZodType> {
  const out: Record<string, z.ZodType> = {};
  for (const p of pieces) for (const r of PIECES[p].rows) Object.assign(out, r.vars);
  return out;
}

/** The schema of every variable (the launcher's, and the type every service's configuration shares). */
export const envSchema = z.object(shapeOf(SERVICE_PIECES.platform) as { [K in keyof Shape]: Shape[K] extends z.ZodType ? Shape[K] : never });
export type Env = z.infer<typeof envSchema>;
// eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents -- `& string` drops symbol/number keys; not redundant
export type VariableName = keyof Env & string;

/** The variables `service` reads, and its schema. */
export function serviceVariables(service: ServiceName): VariableName[] {
  return Object.keys(shapeOf(SERVICE_PIECES[service])) as VariableName[];
}
export function serviceSchema(service: ServiceName): z.ZodObject {
  return envSchema.pick(Object.fromEntries(serviceVariables(service).map((k) => [k, true])) as never);
}

/** The production secrets of `service`. */
export function secretsOf(service: string): readonly VariableName[] {
  return service === 'gateway' ? SERVICE_SECRETS.gateway : service === 'auth' ? SERVICE_SECRETS.auth : SERVICE_SECRETS.subgraph;
}

/** Every service name SERVICE_PIECES knows, with `name` (a subgraph's) among them. */
export function isServiceName(name: string): name is ServiceName {
  return Object.prototype.hasOwnProperty.call(SERVICE_PIECES, name);
}
