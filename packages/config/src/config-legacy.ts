/**
 * The predecessor system's variable names (../shared/seeds: its Kafka guides), read so that an
 * operator's old environment either means what it meant there or stops the start with an error that
 * names the variable to use instead. Nothing here is ignored silently.
 *
 *   KAFKA_ENABLED=false          no broker: the embedded event log, whatever KAFKA_BROKERS says
 *   KAFKA_ENABLED=true           KAFKA_BROKERS (or KAFKA_BROKER) must be set
 *   KAFKA_BROKER                 alias of KAFKA_BROKERS
 *   KAFKA_MECHANISM              alias of KAFKA_SASL_MECHANISM (any case: PLAIN, SCRAM-SHA-256, ...)
 *   KAFKA_SASL_USERNAME/PASSWORD alias of KAFKA_USERNAME / KAFKA_PASSWORD
 *   KAFKA_SECURITY_PROTOCOL      PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL → KAFKA_SSL (+ a mechanism required for SASL_*)
 *   UPSTASH_KAFKA_*              refused, naming the KAFKA_* variable to use (the REST API is not used)
 */
type Env = Record<string, string | undefined>;

export class LegacyConfigError extends Error {}

const ALIASES: Record<string, string> = {
  KAFKA_BROKER: 'KAFKA_BROKERS',
  KAFKA_MECHANISM: 'KAFKA_SASL_MECHANISM',
  KAFKA_SASL_USERNAME: 'KAFKA_USERNAME',
  KAFKA_SASL_PASSWORD: 'KAFKA_PASSWORD',
};

/** Seed names that have no meaning here: the start stops and says what to set instead. */
const REPLACED: Record<string, string> = {
  UPSTASH_KAFKA_BROKER_URL: 'KAFKA_BROKERS (with KAFKA_SSL=true)',
  UPSTASH_KAFKA_SASL_USERNAME: 'KAFKA_USERNAME (with KAFKA_SASL_MECHANISM)',
  UPSTASH_KAFKA_SASL_PASSWORD: 'KAFKA_PASSWORD (with KAFKA_SASL_MECHANISM)',
  UPSTASH_KAFKA_REST_URL: 'KAFKA_BROKERS (the Kafka protocol is used, not the REST API)',
  UPSTASH_KAFKA_REST_USERNAME: 'KAFKA_USERNAME (the Kafka protocol is used, not the REST API)',
  UPSTASH_KAFKA_REST_PASSWORD: 'KAFKA_PASSWORD (the Kafka protocol is used, not the REST API)',
};

const PROTOCOLS: Record<string, { ssl: boolean; sasl: boolean }> = {
  PLAINTEXT: { ssl: false, sasl: false },
  SSL: { ssl: true, sasl: false },
  SASL_PLAINTEXT: { ssl: false, sasl: true },
  SASL_SSL: { ssl: true, sasl: true },
};

const set = (env: Env, key: string) => env[key] !== undefined && env[key].trim() !== '';

/**
 * Returns the environment with the predecessor's names translated to ours (the input is not changed).
 * Throws LegacyConfigError naming the variable when an old name cannot be honoured or contradicts a new one.
 */
export function translateLegacyNames(input: Env): Env {
  const env: Env = { ...input };
  const problems: string[] = [];

  for (const [old, replacement] of Object.entries(REPLACED)) {
    if (set(env, old)) problems.push(`${old} is not read by this platform: set ${replacement}`);
  }
  for (const [old, current] of Object.entries(ALIASES)) {
    if (!set(env, old)) continue;
    if (set(env, current) && env[current]!.trim() !== env[old]!.trim()) {
      problems.push(`${old} and ${current} are both set and differ: set only ${current}`);
    } else {
      env[current] = env[old];
    }
  }
  if (set(env, 'KAFKA_SASL_MECHANISM')) env.KAFKA_SASL_MECHANISM = env.KAFKA_SASL_MECHANISM!.trim().toLowerCase().replace(/_/g, '-');

  if (set(env, 'KAFKA_SECURITY_PROTOCOL')) {
    const name = env.KAFKA_SECURITY_PROTOCOL!.trim().toUpperCase();
    const protocol = PROTOCOLS[name];
    if (!protocol) {
      problems.push(`KAFKA_SECURITY_PROTOCOL=${env.KAFKA_SECURITY_PROTOCOL} is not one of ${Object.keys(PROTOCOLS).join(', ')}: or set KAFKA_SSL and KAFKA_SASL_MECHANISM`);
    } else {
      if (set(env, 'KAFKA_SSL') && /^(true|1|yes|on|y|enabled)$/i.test(env.KAFKA_SSL!.trim()) !== protocol.ssl) {
        problems.push(`KAFKA_SECURITY_PROTOCOL=${name} contradicts KAFKA_SSL=${env.KAFKA_SSL}: set only KAFKA_SSL`);
      }
      env.KAFKA_SSL = String(protocol.ssl);
      if (protocol.sasl && !set(env, 'KAFKA_SASL_MECHANISM')) {
        problems.push(`KAFKA_SECURITY_PROTOCOL=${name} needs KAFKA_SASL_MECHANISM (plain, scram-sha-256 or scram-sha-512)`);
      }
      if (!protocol.sasl && set(env, 'KAFKA_SASL_MECHANISM')) {
        problems.push(`KAFKA_SECURITY_PROTOCOL=${name} has no SASL, but KAFKA_SASL_MECHANISM is set: use SASL_${protocol.ssl ? 'SSL' : 'PLAINTEXT'} or unset the mechanism`);
      }
    }
  }

  if (set(env, 'KAFKA_ENABLED')) {
    const value = env.KAFKA_ENABLED!.trim().toLowerCase();
    if (/^(false|0|no|off|n|disabled)$/.test(value)) {
      // as in the predecessor: no broker at all, whatever else is set
      env.KAFKA_BROKERS = '';
      if (env.EVENT_BUS?.trim() === 'kafka') problems.push('KAFKA_ENABLED=false contradicts EVENT_BUS=kafka: set only one');
    } else if (/^(true|1|yes|on|y|enabled)$/.test(value)) {
      if (!set(env, 'KAFKA_BROKERS')) problems.push('KAFKA_ENABLED=true needs KAFKA_BROKERS (host:port, comma-separated)');
    } else {
      problems.push(`KAFKA_ENABLED=${env.KAFKA_ENABLED} is neither true nor false`);
    }
  }

  const credentials = set(env, 'KAFKA_USERNAME') || set(env, 'KAFKA_PASSWORD');
  if (credentials && !set(env, 'KAFKA_SASL_MECHANISM')) {
    problems.push(
      'KAFKA_USERNAME/KAFKA_PASSWORD are set but KAFKA_SASL_MECHANISM is not: set it to plain, scram-sha-256 or scram-sha-512 (credentials are never sent unauthenticated)',
    );
  }

  if (problems.length > 0) throw new LegacyConfigError(problems.join('\n'));
  return env;
}

/** The names this module reads beyond the schema's own (so readConfig passes them through). */
export const LEGACY_NAMES = ['KAFKA_ENABLED', 'KAFKA_SECURITY_PROTOCOL', ...Object.keys(ALIASES), ...Object.keys(REPLACED)];
