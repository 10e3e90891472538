/**
 * The one place that reads process.env. Every service receives a parsed, typed PlatformConfig;
 * a missing or malformed variable fails at start with its name in the message.
 */
import { z } from 'zod';
import { LEGACY_NAMES, LegacyConfigError, translateLegacyNames } from './config-legacy';

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
  .transform((v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean));

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Signing keys, each held by the one service that signs (kit keys.ts, docs/security.md): a private
   * key is a JWK (EC P-256, with kid), public keys a JWKS. Unset outside production: generated on
   * first start under DATA_DIR (in memory with DATA_DIR=memory). Production: SERVICE_SECRETS below.
   */
  AUTH_SIGNING_KEY: optionalString,
  AUTH_PUBLIC_KEYS: optionalString,
  GATEWAY_SIGNING_KEY: optionalString,
  GATEWAY_PUBLIC_KEYS: optionalString,
  SERVICE_SIGNING_KEY: optionalString,
  SERVICE_PUBLIC_KEYS: optionalString,
  JWT_ISSUER: z.string().default('crm-auth'),
  JWT_AUDIENCE: z.string().default('crm-api'),
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(10).max(86_400).default(900),
  REFRESH_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).default(30 * 86_400),
  /**
   * Who may create an account with `register`: open (anyone; development), approval (the account
   * stays inactive until an ADMIN approves it; the production default), closed (refused: an ADMIN
   * creates accounts with createUser).
   */
  REGISTRATION_POLICY: z.enum(['open', 'approval', 'closed']).optional(),
  ADMIN_EMAIL: optionalString,
  /**
   * Outgoing mail (password resets), one URL: smtp://user:pass@host:587 (STARTTLS when offered) or
   * smtps://…:465; nodemailer options as query parameters. Unset: mails are written as files under
   * DATA_DIR/mail (and the reset link is logged in development).
   */
  MAIL_URL: optionalString.refine((v) => v === undefined || /^smtps?:\/\/[^/]/.test(v), 'must be an smtp:// or smtps:// URL'),
  MAIL_FROM: z.string().default('CRM <no-reply@crm.localhost>'),
  /** How often auth's mail outbox is polled; a failed send is retried with backoff up to MAIL_RETRY_MAX_MS. */
  MAIL_POLL_MS: z.coerce.number().int().min(10).default(1000),
  MAIL_RETRY_MAX_MS: z.coerce.number().int().min(100).default(300_000),
  /** A password-reset token works once, within this time. */
  PASSWORD_RESET_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(1800),
  /** The page that receives `#token=…` (the fragment never reaches a server's logs). */
  RESET_PAGE_URL: z.string().url().default('http://localhost:4000/reset-password'),
  ADMIN_PASSWORD: optionalString,

  /** Postgres server; each subgraph uses its own database crm_<name> on it. Unset: `npm start` runs an embedded Postgres under DATA_DIR. */
  POSTGRES_URL: optionalString,
  /** Database name prefix (tests use a unique one per run). */
  DATABASE_PREFIX: z.string().regex(/^[a-z][a-z0-9_]*$/).default('crm_'),
  /** Where the embedded Postgres keeps its cluster (DATA_DIR/postgres); "memory": a throwaway cluster in a temporary directory. */
  DATA_DIR: z.string().default('.data'),

  KAFKA_BROKERS: list,
  KAFKA_CLIENT_ID: optionalString,
  KAFKA_SSL: flag(false),
  KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512', '']).default(''),
  KAFKA_USERNAME: optionalString,
  KAFKA_PASSWORD: optionalString,
  /** Prefix for topics and consumer groups, to share one cluster between environments. */
  KAFKA_NAMESPACE: z.string().regex(/^[a-zA-Z0-9._-]*$/).default(''),
  KAFKA_TOPIC_PARTITIONS: z.coerce.number().int().min(1).default(3),
  KAFKA_TOPIC_RETENTION_MS: z.coerce.number().int().min(60_000).default(7 * 86_400_000),
  /** auto: Kafka when KAFKA_BROKERS is set, else the event log in Postgres when POSTGRES_URL is, else in-process. Or force one. */
  EVENT_BUS: z.enum(['auto', 'kafka', 'postgres', 'memory']).default('auto'),
  /** Live subscriptions (docs/subscriptions.md): events pending per subscription before the client is closed as too slow. */
  SUBSCRIPTION_QUEUE_LIMIT: z.coerce.number().int().min(1).default(100),
  /** Bytes buffered on a subscriber's socket beyond which it is closed as too slow. */
  SUBSCRIPTION_MAX_BUFFERED_BYTES: z.coerce.number().int().min(1024).default(1_048_576),
  SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().min(1).default(20),
  /** WebSocket connections one user (SUBSCRIPTION_CONNECTIONS_PER_USER) or one client IP may hold open on a gateway replica. */
  SUBSCRIPTION_CONNECTIONS_PER_USER: z.coerce.number().int().min(1).default(10),
  SUBSCRIPTION_CONNECTIONS_PER_IP: z.coerce.number().int().min(1).default(100),
  /** Distinct subscriptions of one user resolved for one event; beyond it the event is not delivered to the rest. */
  SUBSCRIPTION_RESOLUTIONS_PER_USER_PER_EVENT: z.coerce.number().int().min(1).default(20),
  /** Entity resolutions (federated queries) run at once for one event. */
  SUBSCRIPTION_RESOLVE_CONCURRENCY: z.coerce.number().int().min(1).default(16),
  /** One live resolution (an event's entity through the subgraphs) not answered within this time is skipped. */
  SUBSCRIPTION_RESOLVE_TIMEOUT_MS: z.coerce.number().int().min(1).default(10_000),

  /** Bearer token Prometheus sends for /metrics. Unset: /metrics is open outside production and off in production. */
  METRICS_TOKEN: optionalString,

  REDIS_URL: optionalString,

  /**
   * `npm start`: "multi" runs the gateway and each subgraph in a process of its own (every core in
   * use, apps/platform/src/processes.ts); "single" runs them all on one event loop.
   */
  STACK_PROCESSES: z.enum(['single', 'multi']).default('multi'),
  /**
   * What started this service: "none" (a container, a terminal) or "ipc" (the platform launcher's
   * multi-process mode forked it: it reports readiness and learns its peers over the IPC channel,
   * and without Kafka its bus is bridged to the other processes over it; kit launcher-link.ts).
   */
  LAUNCHER: z.enum(['none', 'ipc']).default('none'),
  /** Gateway worker processes sharing its port (node:cluster); 1 = the gateway process serves itself. */
  GATEWAY_WORKERS: z.coerce.number().int().min(1).max(64).default(1),

  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  HOST: z.string().default('0.0.0.0'),
  /** Where the gateway reads the composed supergraph (watched for changes). */
  SUPERGRAPH_PATH: z.string().default('supergraph.graphql'),
  CORS_ORIGINS: list,
  /** Introspection and the Apollo Sandbox page: on unless NODE_ENV=production; set to force. */
  INTROSPECTION: optionalFlag,
  SANDBOX: optionalFlag,
  /** Stack traces in GraphQL error responses (gateway and subgraphs): only when set, in any mode. */
  DEBUG_ERRORS: flag(false),
  /** Share identical in-flight subgraph query fetches (same document, variables and identity). */
  SUBGRAPH_DEDUPE: flag(true),
  /** Opt-in: identical queries of one caller in flight at once share one execution (gateway, after every check). */
  INBOUND_DEDUPE: flag(false),
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(1_000_000),
  /** Connections per subgraph database (per process): mind Postgres max_connections × replicas. */
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /** Gateway → subgraph: longest wait for one fetch before the operation gets a SUBGRAPH_TIMEOUT error (undici's own default is 300 s). */
  SUBGRAPH_TIMEOUT_MS: z.coerce.number().int().min(1).max(600_000).default(30_000),
  /** Stopping a server: requests in flight get this long to finish before their connections are cut. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  /** Read-through calls to another subgraph (read-your-writes across domains): timeout per call. */
  PEER_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(5000),
  OUTBOX_POLL_MS: z.coerce.number().int().min(10).default(500),
  /** Outbox rows a relay claims are leased to it this long; a frozen or dead relay's rows go to another replica once it expires. */
  OUTBOX_LEASE_MS: z.coerce.number().int().min(1000).max(600_000).default(10_000),
  /** Longest wait for the broker to acknowledge one publish; below OUTBOX_LEASE_MS (the relay refuses to start otherwise). */
  OUTBOX_SEND_TIMEOUT_MS: z.coerce.number().int().min(100).max(300_000).default(5000),
  /** Set on every database connection: longest statement, longest lock wait, longest idle time inside a transaction (0: off). */
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
  DATABASE_LOCK_TIMEOUT_MS: z.coerce.number().int().min(0).default(10_000),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
  /**
   * Kafka consumer group membership: a member that stops heartbeating (crash, kill -9) loses its
   * partitions after KAFKA_SESSION_TIMEOUT_MS (the broker's group.min.session.timeout.ms, 6 s by
   * default, is the floor); heartbeats every KAFKA_HEARTBEAT_INTERVAL_MS. See docs/consumer-takeover.md.
   */
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).max(300_000).default(6000),
  KAFKA_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(1000),
  /**
   * Static membership (group.instance.id): a stable name of this replica (the pod name, e.g.
   * from the downward API) — a restart under the same name gets its partitions back without a
   * rebalance. Unique per replica: two live processes with one name fence each other. Unset: dynamic members.
   */
  KAFKA_GROUP_INSTANCE_ID: optionalString,
  /** Largest event (envelope JSON bytes) accepted at write time; the relay's batches stay below it too. 1 MB: a cloud broker's limit. */
  EVENT_MAX_BYTES: z.coerce.number().int().min(1024).default(1_000_000),
  /** Dead letters are kept this long (DLQ topics' retention.ms). */
  KAFKA_DLQ_RETENTION_MS: z.coerce.number().int().min(60_000).default(30 * 86_400_000),
  /** A saga not finished within this time is marked TIMED_OUT (it still finishes if its steps arrive). */
  SAGA_TIMEOUT_MS: z.coerce.number().int().min(1000).default(15 * 60_000),
  /** Sent outbox rows are deleted after this age; inbox rows after INBOX_RETENTION_MS (keep it above Kafka retention + the DLQ replay window). */
  OUTBOX_RETENTION_MS: z.coerce.number().int().min(60_000).default(3 * 86_400_000),
  INBOX_RETENTION_MS: z.coerce.number().int().min(60_000).default(45 * 86_400_000),
  DUE_SOON_INTERVAL_MS: z.coerce.number().int().min(100).default(60_000),
  RATE_LIMIT_POINTS: z.coerce.number().int().min(1).default(100),
  RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).default(900),
  MAX_COST: z.coerce.number().int().min(1).default(5000),
  MAX_DEPTH: z.coerce.number().int().min(1).default(12),
  MAX_ALIASES: z.coerce.number().int().min(1).default(30),
  TRUSTED_DOCUMENTS: z.enum(['off', 'allow', 'only']).default('off'),
  /** Gateway protection (docs/gateway-protection.md). Rate limits: on unless NODE_ENV=test; set to force. */
  RATE_LIMIT_ENABLED: optionalFlag,
  /** Redis key prefix for rate limits and the token denylist (KAFKA_NAMESPACE is appended). */
  RATE_LIMIT_PREFIX: z.string().default('crm:gw:'),
  /** Estimated cost units per rate-limit point: points = max(1, ceil(cost / RATE_LIMIT_COST_PER_POINT)). */
  RATE_LIMIT_COST_PER_POINT: z.coerce.number().int().min(1).default(50),
  MAX_DIRECTIVES: z.coerce.number().int().min(1).default(20),
  MAX_TOKENS: z.coerce.number().int().min(100).default(2000),
  /** Failed logins per account (email) and IP in LOGIN_FAILS_WINDOW_SECONDS before a LOGIN_BLOCK_SECONDS block. */
  LOGIN_FAILS_PER_ACCOUNT_IP: z.coerce.number().int().min(1).default(5),
  LOGIN_FAILS_WINDOW_SECONDS: z.coerce.number().int().min(1).default(900),
  /** Failed logins per IP per day (any accounts) before a one-day block of that IP's logins. */
  LOGIN_FAILS_PER_IP_PER_DAY: z.coerce.number().int().min(1).default(100),
  /** Consecutive failed logins of one account (any IP; reset by a success) before a LOGIN_BLOCK_SECONDS block. */
  LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT: z.coerce.number().int().min(1).default(20),
  LOGIN_BLOCK_SECONDS: z.coerce.number().int().min(1).max(86_400).default(900),
  /** The trusted-documents manifest: { "<sha256>": "<query>" } (GraphQL Code Generator persistedDocuments). */
  TRUSTED_DOCUMENTS_PATH: z.string().default('clients/persisted-operations.json'),
  /** Reverse proxies in front of the gateway: the client IP is the X-Forwarded-For entry this many hops from the right. */
  TRUST_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(0),
  /** Telemetry (README "Telemetry"): spans are exported only when an OTLP endpoint (or OTEL_TRACES_EXPORTER=console) is set. */
  OTEL_SDK_DISABLED: flag(false),
  OTEL_TRACES_EXPORTER: z.enum(['otlp', 'console', 'none', '']).default(''),
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalString,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalString,
  OTEL_SERVICE_NAME: optionalString,
  /** Read by the OpenTelemetry SDK itself (listed so they are known and checked): always_on, parentbased_traceidratio, … */
  OTEL_TRACES_SAMPLER: optionalString,
  OTEL_TRACES_SAMPLER_ARG: optionalString,
});

export type Env = z.infer<typeof envSchema>;

export interface PlatformConfig extends Env {
  production: boolean;
  /** REGISTRATION_POLICY, defaulted: open outside production, approval in production. */
  registrationPolicy: 'open' | 'approval' | 'closed';
  introspection: boolean;
  sandbox: boolean;
}

export class ConfigError extends Error {}

export function readConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<keyof Env, string>> = {}): PlatformConfig {
  let given: Record<string, string | undefined>;
  try {
    given = translateLegacyNames({ ...pickKnown(env), ...overrides });
  } catch (err) {
    if (!(err instanceof LegacyConfigError)) throw err;
    throw new ConfigError(`Invalid configuration:\n${err.message.split('\n').map((l) => `  ${l}`).join('\n')}`);
  }
  const parsed = envSchema.safeParse(given);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  const production = c.NODE_ENV === 'production';
  if (production) checkProductionSecrets(c);
  return {
    ...c,
    production,
    introspection: c.INTROSPECTION ?? !production,
    sandbox: c.SANDBOX ?? !production,
    registrationPolicy: c.REGISTRATION_POLICY ?? (production ? 'approval' : 'open'),
  };
}

/** Words that mark a value someone was meant to replace (compose files, READMEs, examples). */
const PLACEHOLDER = /change.?me|changeme|dev.?only|placeholder|example|default|secret|passw(or)?d|todo|xxx|replace|insecure|123456/i;
/** A random secret of 32+ characters has far more distinct characters than this. */
const MIN_DISTINCT_CHARS = 10;

function placeholderLike(value: string): boolean {
  return PLACEHOLDER.test(value) || new Set(value).size < MIN_DISTINCT_CHARS;
}

/**
 * Production refuses secrets anyone could guess: placeholder-looking (e.g. compose's old `change-me-…`
 * fallbacks) or repetitive. The signing keys are checked per service (requireServiceSecrets).
 */
function checkProductionSecrets(c: Env): void {
  const problems: string[] = [];
  if (c.METRICS_TOKEN !== undefined && (c.METRICS_TOKEN.length < 24 || placeholderLike(c.METRICS_TOKEN))) problems.push('METRICS_TOKEN looks like a placeholder or is shorter than 24 characters');
  if (c.ADMIN_PASSWORD && (PLACEHOLDER.test(c.ADMIN_PASSWORD) || c.ADMIN_PASSWORD.length < 12)) {
    problems.push('ADMIN_PASSWORD looks like a placeholder or is shorter than 12 characters');
  }
  if (problems.length > 0) throw new ConfigError(`Invalid production configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

/**
 * The keys each service needs, and only those (docs/security.md): auth signs access tokens; the
 * gateway verifies them and signs what it forwards; every subgraph verifies the gateway's and its
 * peers' signatures and signs its own read-through calls. Production refuses to start without them.
 */
export const SERVICE_SECRETS = {
  gateway: ['GATEWAY_SIGNING_KEY', 'AUTH_PUBLIC_KEYS'],
  auth: ['AUTH_SIGNING_KEY', 'GATEWAY_PUBLIC_KEYS', 'SERVICE_SIGNING_KEY', 'SERVICE_PUBLIC_KEYS'],
  subgraph: ['GATEWAY_PUBLIC_KEYS', 'SERVICE_SIGNING_KEY', 'SERVICE_PUBLIC_KEYS'],
} as const satisfies Record<string, readonly (keyof Env)[]>;

/** In production: a ConfigError naming every variable `service` needs and lacks. */
export function requireServiceSecrets(config: PlatformConfig, service: string): void {
  if (!config.production) return;
  const needed: readonly (keyof Env)[] = service === 'gateway' ? SERVICE_SECRETS.gateway : service === 'auth' ? SERVICE_SECRETS.auth : SERVICE_SECRETS.subgraph;
  const missing = needed.filter((k) => !config[k]);
  if (missing.length > 0) {
    throw new ConfigError(`Invalid production configuration for ${service}:\n${missing.map((k) => `  ${k} must be set in production (docs/security.md)`).join('\n')}`);
  }
}

/** Per-subgraph database URL: <NAME>_DATABASE_URL wins, else POSTGRES_URL with database <prefix><name>. */
export function databaseUrlFor(config: PlatformConfig, subgraph: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const override = env[`${subgraph.toUpperCase().replace(/-/g, '_')}_DATABASE_URL`];
  if (override) return override;
  if (!config.POSTGRES_URL) return undefined;
  const url = new URL(config.POSTGRES_URL);
  url.pathname = `/${config.DATABASE_PREFIX}${subgraph.replace(/-/g, '_')}`;
  return url.toString();
}

/** Subgraph URLs for composition: <NAME>_URL overrides supergraph.yaml's routing_url. */
export function routingUrlOverride(subgraph: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env[`${subgraph.toUpperCase().replace(/-/g, '_')}_URL`] || undefined;
}

function pickKnown(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of [...Object.keys(envSchema.shape), ...LEGACY_NAMES]) out[key] = env[key];
  return out;
}
