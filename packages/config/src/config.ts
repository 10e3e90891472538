/**
 * The one place that reads process.env. Every service receives a parsed, typed configuration of the
 * variables it declares (variables.ts: a shared piece, and its own); a missing or malformed
 * variable fails at start with its name in the message. readConfig reads every variable (the
 * launcher, which runs every service; tools; tests); readServiceConfig only one service's.
 */
import { LEGACY_NAMES, LegacyConfigError, translateLegacyNames } from './config-legacy';
import { envSchema, isServiceName, PIECES, secretsOf, SERVICE_SECRETS, SERVICE_PIECES, serviceSchema, serviceVariables, type Env, type ServiceName } from './variables';

export { isServiceName, PIECES, SERVICE_PIECES, SERVICE_SECRETS, serviceVariables, type ServiceName };

export type { Env };

export interface PlatformConfig extends Env {
  production: boolean;
  /** REGISTRATION_POLICY, defaulted: open outside production, approval in production. */
  registrationPolicy: 'open' | 'approval' | 'closed';
  introspection: boolean;
  sandbox: boolean;
}

export class ConfigError extends Error {}

/** Every variable (the launcher's view: it runs every service; tools and tests use it too). */
export function readConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<keyof Env, string>> = {}): PlatformConfig {
  return parse(envSchema, env, overrides) as unknown as PlatformConfig;
}

/**
 * Only the variables `service` declares (config/variables.ts SERVICE_PIECES): others in the environment
 * are not read (neither validated nor required), and reading one from the result is a programming
 * error (ConfigError naming the declaration to extend). In production it checks the secrets it
 * holds (placeholders); its server requires its own keys at start (requireServiceSecrets), no other service's.
 */
export function readServiceConfig(service: ServiceName, env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<keyof Env, string>> = {}): PlatformConfig {
  return guard(service, parse(serviceSchema(service), env, overrides, service));
}

/**
 * `config` (the launcher's, every variable) as `service` sees it: only what it declares. The
 * launcher's one-process mode and the test stacks hand each service this view.
 */
export function serviceView(service: string, config: PlatformConfig): PlatformConfig {
  if (!isServiceName(service) || service === 'platform') return config;
  const out: Record<string, unknown> = {};
  for (const key of [...serviceVariables(service), ...derivedKeys(service)]) out[key] = (config as unknown as Record<string, unknown>)[key];
  return guard(service, out);
}

type Derived = Pick<PlatformConfig, 'production' | 'registrationPolicy' | 'introspection' | 'sandbox'>;
const DERIVED_FROM: Record<keyof Derived, keyof Env | 'NODE_ENV'> = {
  production: 'NODE_ENV',
  introspection: 'INTROSPECTION',
  sandbox: 'SANDBOX',
  registrationPolicy: 'REGISTRATION_POLICY',
};

function derivedKeys(service: ServiceName): (keyof Derived)[] {
  const declared = new Set<string>(serviceVariables(service));
  return (Object.keys(DERIVED_FROM) as (keyof Derived)[]).filter((k) => declared.has(DERIVED_FROM[k]));
}

const ALL_NAMES = new Set<string>([...Object.keys(envSchema.shape), ...Object.keys(DERIVED_FROM)]);

/** Reading a variable `service` does not declare throws instead of answering undefined. */
function guard(service: ServiceName, values: Record<string, unknown>): PlatformConfig {
  return new Proxy(values, {
    get(target, key, receiver) {
      if (typeof key === 'string' && ALL_NAMES.has(key) && !(key in target)) {
        throw new ConfigError(`${service} reads ${key}, which its configuration does not declare (packages/config/src/variables.ts SERVICE_PIECES)`);
      }
      return Reflect.get(target, key, receiver) as unknown;
    },
  }) as unknown as PlatformConfig;
}

function parse(
  schema: typeof envSchema | ReturnType<typeof serviceSchema>,
  env: NodeJS.ProcessEnv,
  overrides: Record<string, string | undefined>,
  service?: ServiceName,
): Record<string, unknown> {
  let given: Record<string, string | undefined>;
  try {
    given = translateLegacyNames({ ...pickKnown(env), ...overrides });
  } catch (err) {
    if (!(err instanceof LegacyConfigError)) throw err;
    throw new ConfigError(
      `Invalid configuration:\n${err.message
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n')}`,
    );
  }
  const own = new Set(Object.keys(schema.shape));
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(given).filter(([k]) => own.has(k))));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration${service ? ` for ${service}` : ''}:\n${lines.join('\n')}`);
  }
  const c = parsed.data as Partial<Env> & { NODE_ENV: Env['NODE_ENV'] };
  const production = c.NODE_ENV === 'production';
  if (production) checkProductionSecrets(c);
  const out: Record<string, unknown> = { ...c, production };
  if (own.has('INTROSPECTION')) out.introspection = c.INTROSPECTION ?? !production;
  if (own.has('SANDBOX')) out.sandbox = c.SANDBOX ?? !production;
  if (own.has('REGISTRATION_POLICY')) out.registrationPolicy = c.REGISTRATION_POLICY ?? (production ? 'approval' : 'open');
  return out;
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
function checkProductionSecrets(c: Partial<Env>): void {
  const problems: string[] = [];
  if (c.METRICS_TOKEN !== undefined && (c.METRICS_TOKEN.length < 24 || placeholderLike(c.METRICS_TOKEN)))
    problems.push('METRICS_TOKEN looks like a placeholder or is shorter than 24 characters');
  if (c.ADMIN_PASSWORD && (PLACEHOLDER.test(c.ADMIN_PASSWORD) || c.ADMIN_PASSWORD.length < 12)) {
    problems.push('ADMIN_PASSWORD looks like a placeholder or is shorter than 12 characters');
  }
  if (problems.length > 0) throw new ConfigError(`Invalid production configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

/** In production: a ConfigError naming every variable `service` needs and lacks. */
export function requireServiceSecrets(config: PlatformConfig, service: string): void {
  if (!config.production) return;
  const needed = secretsOf(service);
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

/** Root only: the unprivileged user the embedded Postgres server runs as (README EMBEDDED_POSTGRES_USER). */
export function embeddedPostgresUser(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.EMBEDDED_POSTGRES_USER || undefined;
}

/** The environment a child process (the embedded Postgres server and its tools) inherits, with `extra` on top. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...extra };
}

/** Test harnesses: their services' log level (TEST_LOG_LEVEL), quiet unless asked. */
export function testLogLevel(env: NodeJS.ProcessEnv = process.env): string {
  return env.TEST_LOG_LEVEL ?? 'silent';
}

/**
 * Apollo Gateway sends anonymous usage metrics to Apollo unless APOLLO_TELEMETRY_DISABLED is set (it
 * reads process.env itself): off unless the operator says otherwise (README APOLLO_TELEMETRY_DISABLED).
 */
export function defaultApolloTelemetryOff(): void {
  process.env.APOLLO_TELEMETRY_DISABLED ??= 'true';
}

function pickKnown(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of [...Object.keys(envSchema.shape), ...LEGACY_NAMES]) out[key] = env[key];
  return out;
}
