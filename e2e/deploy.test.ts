/**
 * deploy/ (kustomize base and overlays) rendered and kept in step with the code: every object is
 * valid against the Kubernetes schemas (kubernetes-models), every subgraph of SUBGRAPHS and the
 * gateway has a Deployment, Service, HPA and PDB, probes are on the routes the services serve,
 * every variable is one the configuration knows and the whole environment of each container
 * passes readConfig, secrets come from the one Secret, the supergraph ConfigMap is what
 * supergraph.yaml composes to. Where kubectl is installed, the render equals `kubectl kustomize`.
 * Reads files only; needs no cluster.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import * as models from 'kubernetes-models';
import { generateKeySet } from '@crm/runtime';
import { readConfig, requireServiceSecrets, SERVICE_SECRETS } from '@crm/config';
import { readSupergraphConfig } from '@crm/gateway';
import { SUBGRAPHS } from '@crm/platform';
import { containersOf, DEPLOY_DIR, podSpecOf, readManifests, renderKustomization, type Container, type K8sObject } from '../deploy/tools/kustomize';
import { SUPERGRAPH_CONFIGMAP, supergraphConfigMap } from '../deploy/tools/supergraph';
import type { AlertRule } from './support/promql';

const ROOT = join(__dirname, '..');
const OVERLAYS = ['staging', 'production'];
const names = SUBGRAPHS.map((s) => s.name);
const services = ['gateway', ...names];
const envName = (subgraph: string) => subgraph.toUpperCase().replace(/-/g, '_');
const routing = Object.fromEntries(readSupergraphConfig(join(ROOT, 'supergraph.yaml'), {}).map((s) => [s.name, new URL(s.url)]));
const configKeys = new Set(Object.keys(readConfig({})).filter((k) => k === k.toUpperCase()));
const secretExample = readManifests(join(DEPLOY_DIR, 'secrets.example.yaml'))[0]!;
const exampleValues = (secretExample as unknown as { stringData: Record<string, string> }).stringData;
/**
 * What an operator puts in the Secret: the example's keys, with real values for the ones production
 * checks (its placeholders are refused: see the test below).
 */
/** The crm-keys Secret, as `npm run keys` makes it. */
const keyValues = generateKeySet(SUBGRAPHS.map((s) => s.name));
const secretValues: Record<string, string> = {
  ...exampleValues,
  ADMIN_PASSWORD: `Adm1n-${randomBytes(12).toString('base64url')}`,
  METRICS_TOKEN: randomBytes(24).toString('hex'),
};

interface Model {
  validate(): void;
}

/** PrometheusRule (a Prometheus Operator CRD, not in kubernetes-models): the fields the operator requires, and what our alerts promise. */
class PrometheusRuleModel implements Model {
  constructor(private readonly o: { metadata?: { name?: string }; spec?: { groups?: { name?: string; rules?: AlertRule[] }[] } }) {}
  validate(): void {
    const groups = this.o.spec?.groups;
    if (!this.o.metadata?.name || !Array.isArray(groups) || groups.length === 0) throw new Error('PrometheusRule needs metadata.name and spec.groups');
    const seen = new Set<string>();
    for (const g of groups) {
      if (!g.name || !Array.isArray(g.rules) || g.rules.length === 0) throw new Error('every rule group needs a name and rules');
      for (const r of g.rules) {
        if (typeof r.alert !== 'string' || typeof r.expr !== 'string' || !r.expr.trim()) throw new Error(`rule ${JSON.stringify(r)}: alert and expr are required`);
        if (seen.has(r.alert)) throw new Error(`alert ${r.alert} is declared twice`);
        seen.add(r.alert);
        if (r.for !== undefined && !/^\d+(ms|s|m|h|d|w|y)$/.test(r.for)) throw new Error(`${r.alert}: for=${r.for} is not a Prometheus duration`);
        if (!['page', 'ticket'].includes(r.labels?.severity)) throw new Error(`${r.alert}: severity must be page or ticket`);
        if (!r.annotations?.summary) throw new Error(`${r.alert}: a summary annotation is required`);
      }
    }
  }
}
/** The kubernetes-models class of an object's apiVersion and kind (every built-in type). */
function modelOf(o: K8sObject): new (data: unknown) => Model {
  if (o.apiVersion === 'monitoring.coreos.com/v1' && o.kind === 'PrometheusRule') return PrometheusRuleModel as unknown as new (data: unknown) => Model;
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  // kubernetes-models exports each API group camel-cased: networking.k8s.io → networkingK8sIo; the core group as v1.
  const groupKey = group!
    .split('.')
    .map((part, i) => (i === 0 ? part : part[0]!.toUpperCase() + part.slice(1)))
    .join('');
  const scope = (group ? (models as unknown as Record<string, Record<string, unknown>>)[groupKey]?.[version!] : (models as unknown as Record<string, unknown>)[version!]) as
    Record<string, unknown> | undefined;
  const cls = scope?.[o.kind];
  if (typeof cls !== 'function') throw new Error(`no Kubernetes schema for ${o.apiVersion} ${o.kind}`);
  return cls as new (data: unknown) => Model;
}

const byKind = (objects: K8sObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
const sortKey = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const kubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; configMapKeyRef?: unknown };
}
const envOf = (c: Container) => (c.env as EnvVar[] | undefined) ?? [];
const configMapsOf = (c: Container) =>
  ((c.envFrom as { configMapRef?: { name: string }; secretRef?: { name: string } }[] | undefined) ?? []).map((e) => {
    expect(e.secretRef).toBeUndefined(); // secrets come key by key: each service gets only its own
    return e.configMapRef!.name;
  });

/** The environment a container starts with, secrets filled in from deploy/secrets.example.yaml. */
function environment(objects: K8sObject[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const cm of configMapsOf(c)) Object.assign(env, (byKind(objects, 'ConfigMap', cm) as unknown as { data: Record<string, string> }).data);
  for (const e of envOf(c)) {
    const ref = e.valueFrom?.secretKeyRef;
    const value = ref ? (ref.name === 'crm-keys' ? keyValues : secretValues)[ref.key] : e.value;
    if (value !== undefined) env[e.name] = value;
  }
  // As the Secret example says: Kafka credentials only where the overlay names a SASL mechanism
  // (credentials without one stop the start: config-legacy.test.ts).
  if (!env.KAFKA_SASL_MECHANISM) for (const key of ['KAFKA_USERNAME', 'KAFKA_PASSWORD']) delete env[key];
  return env;
}

test('the supergraph ConfigMap is what supergraph.yaml composes to (run `npm run codegen`)', () => {
  expect(readFileSync(SUPERGRAPH_CONFIGMAP, 'utf8')).toBe(supergraphConfigMap());
});

test("the Secret example's placeholder secrets are refused in production (issue 15)", () => {
  // with the production overlay's SASL mechanism, which the example's Kafka credentials go with
  const env = { NODE_ENV: 'production', KAFKA_SASL_MECHANISM: 'scram-sha-512', ...secretValues };
  expect(() => readConfig(env)).not.toThrow();
  for (const key of ['ADMIN_PASSWORD', 'METRICS_TOKEN']) expect(() => readConfig({ ...env, [key]: exampleValues[key] })).toThrow(new RegExp(key));
});

test('the Secret example is a valid Secret with every key the manifests read', () => {
  expect(() => new (modelOf(secretExample))(secretExample).validate()).not.toThrow();
  const objects = renderKustomization(join(DEPLOY_DIR, 'base'));
  const keys = objects.flatMap(containersOf).flatMap((c) =>
    envOf(c)
      .map((e) => e.valueFrom?.secretKeyRef)
      .filter((r) => r !== undefined),
  );
  for (const ref of keys) {
    const known = ref.name === 'crm-keys' ? keyValues : secretValues;
    expect(`${ref.name}/${ref.key}: ${ref.key in known}`).toBe(`${ref.name === 'crm-keys' ? 'crm-keys' : 'crm-secrets'}/${ref.key}: true`);
  }
});

test('the schema check refuses what Kubernetes refuses (a port that is not a number, a Deployment without selector)', () => {
  const deployment = byKind(renderKustomization(join(DEPLOY_DIR, 'base')), 'Deployment', 'customer')!;
  const broken = structuredClone(deployment) as unknown as { spec: { selector?: unknown; template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } };
  broken.spec.template.spec.containers[0]!.ports[0]!.containerPort = 'http';
  expect(() => new (modelOf(deployment))(broken).validate()).toThrow(/containerPort/);
  const noSelector = structuredClone(deployment) as unknown as { spec: { selector?: unknown } };
  delete noSelector.spec.selector;
  expect(() => new (modelOf(deployment))(noSelector).validate()).toThrow(/selector/);
});

describe.each(OVERLAYS)('overlay %s', (overlay) => {
  const dir = join(DEPLOY_DIR, 'overlays', overlay);
  const objects = renderKustomization(dir);

  (kubectl ? test : test.skip)('renders as `kubectl kustomize` does', () => {
    const real = parseAllDocuments(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })).map((d) => d.toJS() as K8sObject);
    const sorted = (list: K8sObject[]) => [...list].sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
    expect(sorted(objects)).toEqual(sorted(real));
  });

  test('every object is valid against the Kubernetes schemas', () => {
    const invalid: string[] = [];
    for (const o of objects) {
      try {
        new (modelOf(o))(o).validate();
      } catch (err) {
        invalid.push(`${sortKey(o)}: ${(err as Error).message}`);
      }
    }
    expect(invalid).toEqual([]);
    expect(objects.length).toBeGreaterThan(services.length * 4);
  });

  test("Kafka, Postgres and Redis are external: only this repo's image runs, no StatefulSet or volume claim", () => {
    expect(objects.filter((o) => ['StatefulSet', 'PersistentVolumeClaim'].includes(o.kind)).map(sortKey)).toEqual([]);
    const images = new Set(objects.flatMap(containersOf).map((c) => c.image));
    expect(images.size).toBe(1);
    expect([...images][0]).toMatch(/^registry\.example\.com\/crm-graph:/);
  });

  describe.each(services)('%s', (service) => {
    const deployment = byKind(objects, 'Deployment', service)!;
    const pod = deployment && podSpecOf(deployment)!;
    const container = deployment && containersOf(deployment)[0]!;
    const podLabels = (deployment?.spec as { template: { metadata: { labels: Record<string, string> } } })?.template.metadata.labels;
    const matches = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);

    test('has a Deployment whose selector matches its pods, a Service, an HPA and a PDB for it', () => {
      expect(deployment).toBeDefined();
      expect(matches((deployment.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels)).toBe(true);
      const svc = byKind(objects, 'Service', service)!.spec as { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
      expect(matches(svc.selector)).toBe(true);
      const hpa = byKind(objects, 'HorizontalPodAutoscaler', service)!.spec as { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number };
      expect(hpa.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: service });
      expect(hpa.minReplicas).toBeLessThanOrEqual(hpa.maxReplicas);
      const pdb = byKind(objects, 'PodDisruptionBudget', service)!.spec as { selector: { matchLabels: Record<string, string> } };
      expect(matches(pdb.selector.matchLabels)).toBe(true);
    });

    test('listens where its Service, supergraph.yaml and PORT say', () => {
      const port = (container.ports as { name: string; containerPort: number }[]).find((p) => p.name === 'http')!;
      expect(String(port.containerPort)).toBe(environment(objects, container).PORT);
      const svcPort = (byKind(objects, 'Service', service)!.spec as { ports: { port: number; targetPort: string }[] }).ports[0]!;
      expect(svcPort.targetPort).toBe('http');
      if (service !== 'gateway') expect(String(svcPort.port)).toBe(routing[service]!.port);
    });

    test("runs this repo's entry point for it", () => {
      const command = container.command as string[];
      for (const arg of command.filter((a) => a.endsWith('.ts') || a.includes('/'))) expect(existsSync(join(ROOT, arg))).toBe(true);
      expect(command).toEqual(service === 'gateway' ? ['node_modules/.bin/tsx', 'gateway/src/main.ts'] : ['node_modules/.bin/tsx', `subgraphs/${service}/src/main.ts`]);
    });

    test('readiness on /ready, liveness and start-up on /health, of its http port', () => {
      const probe = (name: string) => (container[name] as { httpGet: { path: string; port: string } }).httpGet;
      expect(probe('readinessProbe')).toEqual({ path: '/ready', port: 'http' });
      expect(probe('livenessProbe')).toEqual({ path: '/health', port: 'http' });
      expect(probe('startupProbe')).toEqual({ path: '/health', port: 'http' });
      // …which are routes the service serves.
      const source = readFileSync(join(ROOT, service === 'gateway' ? 'gateway/src/server.ts' : 'packages/runtime/src/subgraph.ts'), 'utf8');
      for (const path of ['/ready', '/health']) expect(source).toContain(`'${path}': `);
    });

    test('reaches every subgraph by its Service name and the port of supergraph.yaml (<NAME>_URL: read-through, routing)', () => {
      const env = environment(objects, container);
      for (const peer of names) {
        const url = new URL(env[`${envName(peer)}_URL`] ?? 'http://missing');
        expect(`${peer}: ${url.hostname}:${url.port}${url.pathname}`).toBe(`${peer}: ${peer}:${routing[peer]!.port}${routing[peer]!.pathname}`);
      }
    });

    test('has CPU and memory requests and limits', () => {
      const { requests, limits } = container.resources as { requests: Record<string, string>; limits: Record<string, string> };
      for (const r of ['cpu', 'memory']) {
        expect(requests[r]).toBeDefined();
        expect(limits[r]).toBeDefined();
      }
    });

    test('shuts down gracefully: a preStop pause shorter than the termination grace period', () => {
      const preStop = (container.lifecycle as { preStop: { exec: { command: string[] } } }).preStop.exec.command;
      expect(preStop[0]).toBe('sleep');
      expect(Number(preStop[1])).toBeLessThan((pod.terminationGracePeriodSeconds as number) - 10);
    });

    test('every variable is one the configuration knows, and the whole environment passes readConfig', () => {
      const env = environment(objects, container);
      const own = [...names.map((n) => `${envName(n)}_URL`), ...(service === 'gateway' ? [] : [`${envName(service)}_DATABASE_URL`])];
      const unknown = Object.keys(env).filter((k) => !configKeys.has(k) && !own.includes(k));
      expect(unknown).toEqual([]);
      const config = readConfig(env);
      expect(config.production).toBe(true);
      expect(config.KAFKA_BROKERS.length).toBeGreaterThan(0);
      if (service !== 'gateway') {
        // its own database, and no other subgraph's
        const dbUrls = Object.keys(env).filter((k) => k.endsWith('_DATABASE_URL'));
        expect(dbUrls).toEqual([`${envName(service)}_DATABASE_URL`]);
        expect(config.POSTGRES_URL).toBeUndefined();
      }
      // a subgraph's own key is <NAME>_SERVICE_KEY of crm-keys; every other secret keeps its name
      for (const e of envOf(container)) {
        if (e.valueFrom?.secretKeyRef) expect(e.valueFrom.secretKeyRef.key).toBe(e.name === 'SERVICE_SIGNING_KEY' ? `${envName(service)}_SERVICE_KEY` : e.name);
      }
      // only its own keys (docs/security.md), none optional; production starts with them
      const needed: readonly string[] = service === 'gateway' ? SERVICE_SECRETS.gateway : service === 'auth' ? SERVICE_SECRETS.auth : SERVICE_SECRETS.subgraph;
      const keyVars = envOf(container).filter((e) => e.valueFrom?.secretKeyRef?.name === 'crm-keys');
      expect(keyVars.map((e) => e.name).sort()).toEqual([...needed].sort());
      for (const e of keyVars) expect(e.valueFrom?.secretKeyRef?.optional).not.toBe(true);
      expect(() => requireServiceSecrets(config, service)).not.toThrow();
    });
  });

  test('HTTPS reaches the gateway through an Ingress: TLS from cert-manager, WebSocket-friendly timeouts, its own host', () => {
    const ingress = byKind(objects, 'Ingress', 'gateway') as unknown as {
      metadata: { annotations: Record<string, string> };
      spec: {
        tls: { hosts: string[]; secretName: string }[];
        rules: { host: string; http: { paths: { path: string; backend: { service: { name: string; port: { name: string } } } }[] } }[];
      };
    };
    expect(ingress).toBeDefined();
    expect(ingress.metadata.annotations['cert-manager.io/cluster-issuer']).toMatch(/^letsencrypt/);
    expect(Number(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(3600);
    const host = ingress.spec.rules[0]!.host;
    expect(ingress.spec.tls[0]!.hosts).toEqual([host]);
    expect(host).toBe(overlay === 'production' ? 'crm.example.com' : 'staging.crm.example.com');
    const backend = ingress.spec.rules[0]!.http.paths.find((p) => '/graphql'.startsWith(p.path))!.backend.service;
    expect(backend).toEqual({ name: 'gateway', port: { name: 'http' } });
    expect(byKind(objects, 'Service', 'gateway')).toBeDefined();
  });

  test('every HPA scales on CPU (70 %) and memory (80 %)', () => {
    for (const service of services) {
      const metrics = (byKind(objects, 'HorizontalPodAutoscaler', service)!.spec as { metrics: { resource: { name: string; target: { averageUtilization: number } } }[] }).metrics;
      expect([service, metrics.map((m) => [m.resource.name, m.resource.target.averageUtilization])]).toEqual([
        service,
        [
          ['cpu', 70],
          ['memory', 80],
        ],
      ]);
    }
  });

  (overlay === 'production' ? test : test.skip)('production carries the alert rules (checked against /metrics by telemetry-metrics.test.ts)', () => {
    const rule = objects.find((o) => o.kind === 'PrometheusRule');
    expect(rule?.metadata.namespace).toBe('crm');
    expect(() => new (modelOf(rule!))(rule).validate()).not.toThrow();
    const broken = structuredClone(rule!) as unknown as { spec: { groups: { rules: { labels: { severity: string } }[] }[] } };
    broken.spec.groups[0]!.rules[0]!.labels.severity = 'urgent';
    expect(() => new (modelOf(rule!))(broken).validate()).toThrow(/severity/);
  });

  test('the gateway mounts the supergraph ConfigMap where SUPERGRAPH_PATH points, and has Redis', () => {
    const deployment = byKind(objects, 'Deployment', 'gateway')!;
    const container = containersOf(deployment)[0]!;
    const env = environment(objects, container);
    const mount = (container.volumeMounts as { name: string; mountPath: string }[]).find((m) => env.SUPERGRAPH_PATH!.startsWith(`${m.mountPath}/`))!;
    const volume = (podSpecOf(deployment)!.volumes as { name: string; configMap?: { name: string } }[]).find((v) => v.name === mount.name)!;
    const cm = byKind(objects, 'ConfigMap', volume.configMap!.name) as unknown as { data: Record<string, string> };
    expect(cm.data[env.SUPERGRAPH_PATH!.slice(mount.mountPath.length + 1)]).toContain('@join__graph(name: "customer", url: "http://customer:');
    expect(env.REDIS_URL).toBeTruthy();
  });

  test("the migrations Job migrates every subgraph's database with migrate-cli", () => {
    const job = byKind(objects, 'Job', 'crm-migrate')!;
    const container = containersOf(job)[0]!;
    expect(container.command).toEqual(['node_modules/.bin/tsx', 'apps/platform/src/migrate-cli.ts']);
    const env = environment(objects, container);
    for (const name of names) expect(env[`${envName(name)}_DATABASE_URL`]).toMatch(/^postgresql:\/\//);
    expect(() => readConfig(env)).not.toThrow();
  });
});
