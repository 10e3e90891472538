/**
 * The Kubernetes NetworkPolicies of deploy/ (issue 27 point 7), evaluated on the rendered overlays
 * with NetworkPolicy's own rules (a pod selected by an ingress policy accepts only what one of those
 * policies allows): anyone reaches the gateway's port; a subgraph only from the gateway and its peer
 * subgraphs, never from outside or from another pod of the namespace. Reads files only.
 */
import { join } from 'node:path';
import { SUBGRAPHS } from '@crm/platform';
import { DEPLOY_DIR, podSpecOf, renderKustomization, type K8sObject } from '../deploy/tools/kustomize';

type Labels = Record<string, string>;
interface Peer {
  podSelector?: { matchLabels?: Labels };
  namespaceSelector?: unknown;
  ipBlock?: unknown;
}
interface Policy {
  metadata: { name: string };
  spec: { podSelector: { matchLabels?: Labels }; policyTypes?: string[]; ingress?: { from?: Peer[]; ports?: { port?: string | number }[] }[] };
}

const matches = (selector: { matchLabels?: Labels } | undefined, labels: Labels) => Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

/** Whether a connection from `from` (a pod's labels, or 'outside' the namespace) to a pod with `to` labels on `port` is allowed. */
function allowed(policies: Policy[], from: Labels | 'outside', to: Labels, port: string): boolean {
  const selecting = policies.filter((p) => (p.spec.policyTypes ?? ['Ingress']).includes('Ingress') && matches(p.spec.podSelector, to));
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    (p.spec.ingress ?? []).some((rule) => {
      const portOk = !rule.ports || rule.ports.length === 0 || rule.ports.some((pp) => pp.port === undefined || String(pp.port) === port);
      const fromOk =
        !rule.from ||
        rule.from.length === 0 ||
        rule.from.some((peer) => from !== 'outside' && !peer.namespaceSelector && !peer.ipBlock && peer.podSelector !== undefined && matches(peer.podSelector, from));
      return portOk && fromOk;
    }),
  );
}

describe.each(['staging', 'production'])('%s overlay', (overlay) => {
  const objects = renderKustomization(join(DEPLOY_DIR, 'overlays', overlay));
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy') as unknown as Policy[];
  const podLabels = (name: string): Labels => {
    const d = objects.find((o: K8sObject) => o.kind === 'Deployment' && o.metadata.name === name);
    expect(podSpecOf(d!)).toBeDefined();
    return (d as unknown as { spec: { template: { metadata: { labels: Labels } } } }).spec.template.metadata.labels;
  };
  const gateway = podLabels('gateway');

  test('there are NetworkPolicies, with a default deny for the namespace', () => {
    expect(policies.length).toBeGreaterThan(1);
    expect(policies.some((p) => Object.keys(p.spec.podSelector.matchLabels ?? {}).length === 0 && (p.spec.ingress ?? []).length === 0)).toBe(true);
  });

  test("anyone reaches the gateway's http port", () => {
    expect(allowed(policies, 'outside', gateway, 'http')).toBe(true);
  });

  test.each(SUBGRAPHS.map((s) => s.name))('%s: from the gateway and peer subgraphs only', (name) => {
    const sg = podLabels(name);
    expect(allowed(policies, 'outside', sg, 'http')).toBe(false);
    expect(allowed(policies, { 'app.kubernetes.io/name': 'intruder' }, sg, 'http')).toBe(false);
    expect(allowed(policies, gateway, sg, 'http')).toBe(true);
    for (const peer of SUBGRAPHS.filter((s) => s.name !== name)) expect(allowed(policies, podLabels(peer.name), sg, 'http')).toBe(true);
  });
});
