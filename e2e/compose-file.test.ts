/**
 * docker-compose.yml, docker/postgres-init.sql and the Dockerfile kept in step with the code:
 * every subgraph of SUBGRAPHS and the gateway is a service built from this repo, with a health
 * check, the dependencies it needs (healthy), the port of supergraph.yaml, only variables the
 * configuration knows; the infrastructure (Kafka in KRaft mode, Postgres with a database per
 * subgraph, Redis, Kafka UI) is there and healthy-checked. Reads files only; runs no container.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError, readConfig, requireServiceSecrets, SERVICE_SECRETS } from '@crm/config';
import { generateKeySet } from '@crm/runtime';
import { readSupergraphConfig } from '@crm/gateway';
import { SUBGRAPHS } from '@crm/platform';

const ROOT = join(__dirname, '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: unknown;
  environment?: Record<string, string | number | boolean | null>;
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  ports?: string[];
  volumes?: string[];
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const envName = (subgraph: string) => subgraph.toUpperCase().replace(/-/g, '_');
const routing = Object.fromEntries(readSupergraphConfig(join(ROOT, 'supergraph.yaml'), {}).map((s) => [s.name, new URL(s.url)]));
const names = SUBGRAPHS.map((s) => s.name);
/** Every key of the config schema (readConfig returns each one, defaulted or undefined). */
const configKeys = new Set(Object.keys(readConfig({})).filter((k) => k === k.toUpperCase()));
/** What an operator sets before `docker compose up` (the file has no defaults for these). */
const OPERATOR: Record<string, string> = {
  // `npm run keys > .env`
  ...generateKeySet(SUBGRAPHS.map((s) => s.name)),
  POSTGRES_PASSWORD: randomBytes(16).toString('hex'),
  REDIS_PASSWORD: randomBytes(24).toString('hex'),
  AUTH_DB_PASSWORD: randomBytes(16).toString('hex'),
  CUSTOMER_DB_PASSWORD: randomBytes(16).toString('hex'),
  SALES_ACTIVITY_DB_PASSWORD: randomBytes(16).toString('hex'),
  OPPORTUNITY_DB_PASSWORD: randomBytes(16).toString('hex'),
  ANALYTICS_DB_PASSWORD: randomBytes(16).toString('hex'),
  GRAFANA_ADMIN_PASSWORD: randomBytes(12).toString('hex'),
  METRICS_TOKEN: randomBytes(24).toString('hex'),
  ADMIN_EMAIL: 'ops@crm.example.org',
  ADMIN_PASSWORD: `Adm1n-${randomBytes(12).toString('base64url')}`,
};
class MissingVariable extends Error {}
/** Compose's interpolation: `${VAR}`, `${VAR:-default}`, and `${VAR:?message}` (an error when VAR is unset or empty). */
const interpolate = (v: string, shell: Record<string, string> = OPERATOR) =>
  v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
    const value = shell[name];
    if (op?.endsWith('?')) {
      if (!value) throw new MissingVariable(`${name}: ${arg}`);
      return value;
    }
    return value || (arg ?? '');
  });
const env = (service: string, shell: Record<string, string> = OPERATOR): Record<string, string> =>
  Object.fromEntries(Object.entries(services[service]?.environment ?? {}).map(([k, v]) => [k, v === null ? '' : interpolate(String(v), shell)]));
const dependsOn = (service: string) => {
  const deps = services[service]?.depends_on ?? {};
  return Array.isArray(deps) ? Object.fromEntries(deps.map((d) => [d, {}])) : deps;
};
const ownServices = ['gateway', ...names];

test('supergraph.yaml and SUBGRAPHS name the same subgraphs', () => {
  expect(Object.keys(routing).sort()).toEqual([...names].sort());
});

describe.each(names)('subgraph %s', (name) => {
  test('is a service built from this repo, with its own SERVICE and the PORT of supergraph.yaml', () => {
    const svc = services[name];
    expect(svc).toBeDefined();
    expect(svc!.build).toBeDefined();
    expect(env(name).SERVICE).toBe(name);
    expect(env(name).PORT).toBe(routing[name]!.port);
  });

  test('has a health check on its /ready and waits for healthy Postgres, Kafka and Redis', () => {
    const check = [services[name]!.healthcheck?.test ?? []].flat().join(' ');
    expect(services[name]!.healthcheck?.disable).not.toBe(true);
    expect(check).toContain('/ready');
    for (const dep of ['postgres', 'kafka', 'redis']) expect(dependsOn(name)[dep]).toEqual({ condition: 'service_healthy' });
  });

  test('gets its own keys only, its database server, the brokers and Redis', () => {
    const e = env(name);
    for (const key of ['NODE_ENV', 'KAFKA_BROKERS', 'REDIS_URL']) expect(e[key]).toBeTruthy();
    // docs/security.md: the gateway's and its peers' public keys, its own private key (auth: also the token key)
    const keys = Object.keys(e)
      .filter((k) => /_KEYS?$|SECRET/.test(k) && k !== 'METRICS_TOKEN')
      .sort();
    expect(keys).toEqual([...(name === 'auth' ? SERVICE_SECRETS.auth : SERVICE_SECRETS.subgraph)].sort());
    expect(e.SERVICE_SIGNING_KEY).toBe(OPERATOR[`${envName(name)}_SERVICE_KEY`]);
    expect(() => requireServiceSecrets(readConfig(e), name)).not.toThrow();
    expect(e.POSTGRES_URL || e[`${envName(name)}_DATABASE_URL`]).toBeTruthy();
  });

  test('reaches every other subgraph by its service name (<NAME>_URL, for read-through)', () => {
    const e = env(name);
    for (const peer of names.filter((n) => n !== name)) {
      const url = new URL(e[`${envName(peer)}_URL`] ?? 'http://missing');
      expect(`${peer}: ${url.hostname}:${url.port}`).toBe(`${peer}: ${peer}:${routing[peer]!.port}`);
    }
  });
});

describe('gateway', () => {
  test('is a service with SERVICE=gateway, a published port and a /ready health check', () => {
    const e = env('gateway');
    expect(services.gateway!.build).toBeDefined();
    expect(e.SERVICE).toBe('gateway');
    expect(services.gateway!.ports).toContain(`${e.PORT}:${e.PORT}`);
    expect([services.gateway!.healthcheck?.test ?? []].flat().join(' ')).toContain('/ready');
  });

  test('routes to every subgraph by its service name and port (<NAME>_URL)', () => {
    const e = env('gateway');
    for (const name of names) {
      const url = new URL(e[`${envName(name)}_URL`] ?? 'http://missing');
      expect(`${name}: ${url.hostname}:${url.port}${url.pathname}`).toBe(`${name}: ${name}:${routing[name]!.port}${routing[name]!.pathname}`);
    }
  });

  test('starts once every subgraph is healthy (and the infrastructure)', () => {
    for (const dep of [...names, 'kafka', 'redis']) expect([dep, dependsOn('gateway')[dep]]).toEqual([dep, { condition: 'service_healthy' }]);
  });

  test("holds its own private key and auth's public keys, nothing that signs for auth or a subgraph", () => {
    const e = env('gateway');
    expect(
      Object.keys(e)
        .filter((k) => /_KEYS?$|SECRET/.test(k))
        .sort(),
    ).toEqual([...SERVICE_SECRETS.gateway].sort());
    expect(e.AUTH_PUBLIC_KEYS).toBe(OPERATOR.AUTH_PUBLIC_KEYS);
    // what the gateway signs, every subgraph verifies
    for (const name of names) expect(env(name).GATEWAY_PUBLIC_KEYS).toBe(OPERATOR.GATEWAY_PUBLIC_KEYS);
    expect(() => requireServiceSecrets(readConfig(e), 'gateway')).not.toThrow();
  });
});

test('every variable given to our services is one the configuration knows', () => {
  const allowed = (key: string) => configKeys.has(key) || key === 'SERVICE' || names.some((n) => key === `${envName(n)}_URL` || key === `${envName(n)}_DATABASE_URL`);
  const unknown = ownServices.flatMap((s) =>
    Object.keys(env(s))
      .filter((k) => !allowed(k))
      .map((k) => `${s}: ${k}`),
  );
  expect(unknown).toEqual([]);
  // …and every value is one the configuration accepts.
  for (const s of ownServices) expect(() => readConfig(env(s))).not.toThrow();
});

test('Kafka runs in KRaft mode (apache/kafka), healthy-checked', () => {
  const kafka = services.kafka!;
  expect(kafka.image).toMatch(/^apache\/kafka:/);
  expect(String(env('kafka').KAFKA_PROCESS_ROLES)).toContain('controller');
  expect(env('kafka').KAFKA_CONTROLLER_QUORUM_VOTERS).toBeTruthy();
  expect(kafka.healthcheck?.test).toBeDefined();
  // The brokers our services use are the ones Kafka advertises inside the network.
  const internal = env('kafka')
    .KAFKA_ADVERTISED_LISTENERS!.split(',')
    .map((l) => l.replace(/^[A-Z_]+:\/\//, ''));
  for (const s of ownServices) for (const b of env(s).KAFKA_BROKERS!.split(',')) expect(internal).toContain(b);
});

test('Postgres creates a database per subgraph; Redis and Kafka UI are there, all healthy-checked', () => {
  const pg = services.postgres!;
  expect(pg.image).toMatch(/^postgres:/);
  expect(pg.healthcheck?.test).toBeDefined();
  expect(pg.volumes?.some((v) => v.startsWith('./docker/postgres-init.sql:/docker-entrypoint-initdb.d/'))).toBe(true);
  const created = [...read('docker/postgres-init.sql').matchAll(/CREATE DATABASE\s+"?([a-z0-9_]+)"?/gi)].map((m) => m[1]);
  for (const name of names) {
    const prefix = env(name).DATABASE_PREFIX || 'crm_';
    expect(created).toContain(`${prefix}${name.replace(/-/g, '_')}`);
  }
  expect(services.redis?.image).toMatch(/^redis:/);
  expect(services.redis?.healthcheck?.test).toBeDefined();
  expect(services['kafka-ui']?.image).toMatch(/kafka-ui/);
  expect(services['kafka-ui']?.healthcheck?.test).toBeDefined();
  expect(dependsOn('kafka-ui').kafka).toEqual({ condition: 'service_healthy' });
});

test('the Dockerfile is multi-stage, runs as a non-root user and starts the service named by SERVICE', () => {
  const dockerfile = read('Dockerfile');
  expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
  const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
  expect(users.length).toBeGreaterThan(0);
  expect(['root', '0']).not.toContain(users.at(-1));
  expect(dockerfile).toContain('subgraphs/$SERVICE/src/main.ts');
  expect(dockerfile).toContain('gateway/src/main.ts');
  expect(dockerfile).toMatch(/SERVICE/);
  // every workspace's package.json reaches `npm ci` (else its dependencies are missing)
  for (const name of names) expect(dockerfile).toContain(`COPY subgraphs/${name}/package.json`);
});

describe('secrets and exposure (issue 15, finding 3)', () => {
  const SECRET_NAME = /SECRET|PASSWORD|TOKEN|_KEY$/;
  const all = Object.keys(services);

  test('no secret has a default: every one is ${VAR:?…}, so compose refuses to start without it', () => {
    const offending: string[] = [];
    for (const s of all) {
      for (const [k, raw] of Object.entries(services[s]!.environment ?? {})) {
        const v = String(raw ?? '');
        if (SECRET_NAME.test(k) && !/^\$\{[A-Z_]+:\?[^}]+\}$/.test(v)) offending.push(`${s}: ${k}=${v}`);
        // credentials inside URLs (user:password@host) come from a required variable too
        const userinfo = /:\/\/[^:/@]+:([^@]+)@/.exec(v)?.[1];
        if (userinfo !== undefined && !/^\$\{[A-Z_]+:\?[^}]+\}$/.test(userinfo)) offending.push(`${s}: ${k} has a literal password`);
      }
    }
    expect(offending).toEqual([]);
    // With an empty shell, interpolation fails (as `docker compose up` does) for every service that needs secrets.
    for (const s of ['gateway', ...names, 'postgres']) expect(() => env(s, {})).toThrow(MissingVariable);
  });

  test('placeholder secrets and missing keys are refused by the services in production', () => {
    const base = env('gateway');
    expect(() => readConfig(base)).not.toThrow();
    const refuse = (overrides: Record<string, string>, message: RegExp) => {
      let error: unknown;
      try {
        requireServiceSecrets(readConfig({ ...base, ...overrides }), 'gateway');
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(String((error as Error).message)).toMatch(message);
    };
    refuse({ METRICS_TOKEN: 'change-me-metrics-token-0123456789' }, /METRICS_TOKEN looks like a placeholder/);
    refuse({ METRICS_TOKEN: 'a'.repeat(48) }, /METRICS_TOKEN looks like a placeholder/);
    refuse({ ADMIN_PASSWORD: 'change-me-admin-password' }, /ADMIN_PASSWORD/);
    refuse({ GATEWAY_SIGNING_KEY: '' }, /GATEWAY_SIGNING_KEY must be set in production/);
    refuse({ AUTH_PUBLIC_KEYS: '' }, /AUTH_PUBLIC_KEYS must be set in production/);
  });

  test('only the gateway is published beyond the host: infrastructure ports bind to 127.0.0.1', () => {
    const exposed: string[] = [];
    for (const s of all) {
      for (const p of services[s]!.ports ?? []) {
        const parts = String(p).split(':');
        // "host:container" or "container" publishes on every interface; "127.0.0.1:host:container" does not.
        if (s !== 'gateway' && !(parts.length === 3 && parts[0] === '127.0.0.1')) exposed.push(`${s}: ${p}`);
      }
    }
    expect(exposed).toEqual([]);
    for (const s of ['kafka', 'postgres', 'redis', 'kafka-ui']) expect(services[s]!.ports?.every((p) => String(p).startsWith('127.0.0.1:')) ?? true).toBe(true);
  });
});

test('Mailpit catches the mail auth sends: its web UI on 127.0.0.1 only, its SMTP port inside the network', () => {
  const mailpit = services.mailpit!;
  expect(mailpit.image).toMatch(/^axllent\/mailpit:v\d+\.\d+\.\d+$/);
  expect(mailpit.ports).toEqual(['127.0.0.1:8025:8025']);
  expect(mailpit.healthcheck).toBeDefined();
  const auth = env('auth');
  expect(auth.MAIL_URL).toBe('smtp://mailpit:1025');
  expect(() => readConfig(auth)).not.toThrow();
  expect(readConfig(auth).MAIL_URL).toBe('smtp://mailpit:1025');
});

describe('least privilege in compose (issue 27 point 7)', () => {
  test('every subgraph connects as its own Postgres role to its own database, never as the superuser', () => {
    const roles = new Set<string>();
    for (const name of names) {
      const e = env(name);
      expect(e.POSTGRES_URL ?? '').toBe('');
      const url = new URL(e[`${envName(name)}_DATABASE_URL`]!);
      const db = `crm_${name.replace(/-/g, '_')}`;
      expect([url.username, url.pathname]).toEqual([db, `/${db}`]);
      expect(url.password).toBe(OPERATOR[`${envName(name)}_DB_PASSWORD`]);
      roles.add(url.username);
    }
    expect(roles.size).toBe(names.length);
    expect(env('gateway').POSTGRES_URL ?? '').toBe('');
    const script = read('docker/postgres-roles.sh');
    expect(script).toMatch(/NOSUPERUSER/);
    for (const name of names) expect(script).toContain(name.replace(/-/g, '_'));
    expect(services.postgres!.volumes?.some((v) => v.startsWith('./docker/postgres-roles.sh:/docker-entrypoint-initdb.d/'))).toBe(true);
  });

  test('Redis requires a password, and every service that uses it sends one', () => {
    expect(JSON.stringify(services.redis!.command)).toContain('--requirepass');
    expect(env('redis').REDIS_PASSWORD).toBe(OPERATOR.REDIS_PASSWORD);
    for (const s of ownServices) expect(new URL(env(s).REDIS_URL!).password).toBe(OPERATOR.REDIS_PASSWORD);
  });
});
