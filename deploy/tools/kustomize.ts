/**
 * Renders a kustomization the way `kubectl kustomize` does, for the subset deploy/ uses, so tests
 * run without the binary: `resources` (files and directories), `namespace`, `labels` (metadata
 * only), `images`, `replicas` and `patches` with inline JSON 6902 operations (fast-json-patch)
 * targeted by kind and name. Any other field is refused, never ignored. e2e/deploy.test.ts
 * compares the result with `kubectl kustomize` wherever kubectl is installed.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { applyPatch, type Operation } from 'fast-json-patch';
import { parse, parseAllDocuments } from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  images?: { name: string; newName?: string; newTag?: string }[];
  replicas?: { name: string; count: number }[];
  patches?: { target: { kind?: string; name?: string }; patch: string }[];
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'labels', 'images', 'replicas', 'patches']);
/** Kinds that live outside namespaces (kustomize leaves them alone). */
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PriorityClass', 'StorageClass']);

export function readManifests(path: string): K8sObject[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0]!.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  const k = parse(readFileSync(file, 'utf8')) as Kustomization;
  const unknown = Object.keys(k).filter((key) => !SUPPORTED.has(key));
  if (unknown.length > 0) throw new Error(`${file}: field(s) ${unknown.join(', ')} are not supported by deploy/tools/kustomize.ts`);

  let objects = (k.resources ?? []).flatMap((r) => {
    const path = resolve(dir, r);
    return statSync(path).isDirectory() ? renderKustomization(path) : readManifests(path);
  });

  for (const { target, patch } of k.patches ?? []) {
    const ops = parse(patch) as Operation[];
    const matched = objects.filter((o) => (!target.kind || o.kind === target.kind) && (!target.name || o.metadata.name === target.name));
    if (matched.length === 0) throw new Error(`${file}: patch target ${JSON.stringify(target)} matches nothing`);
    objects = objects.map((o) => (matched.includes(o) ? applyPatch(structuredClone(o), ops, true, false).newDocument : o));
  }
  for (const { name, count } of k.replicas ?? []) {
    const found = objects.filter((o) => o.metadata.name === name && ['Deployment', 'StatefulSet', 'ReplicaSet'].includes(o.kind));
    if (found.length === 0) throw new Error(`${file}: replicas for "${name}" match no workload`);
    for (const o of found) (o.spec as { replicas?: number }).replicas = count;
  }
  for (const image of k.images ?? []) {
    for (const c of objects.flatMap(containersOf)) {
      const [name, tag] = splitImage(c.image);
      if (name !== image.name) continue;
      c.image = `${image.newName ?? name}${image.newTag ? `:${image.newTag}` : tag ? `:${tag}` : ''}`;
    }
  }
  for (const { pairs, includeSelectors, includeTemplates } of k.labels ?? []) {
    if (includeSelectors || includeTemplates) throw new Error(`${file}: labels with includeSelectors/includeTemplates are not supported`);
    for (const o of objects) o.metadata.labels = { ...(o.metadata.labels ?? {}), ...pairs };
  }
  if (k.namespace) for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  return objects;
}

export interface Container {
  name: string;
  image: string;
  [k: string]: unknown;
}

/** Containers (and init containers) of a workload's pod template; none for other kinds. */
export function containersOf(o: K8sObject): Container[] {
  const spec = podSpecOf(o);
  return spec ? [...((spec.initContainers as Container[] | undefined) ?? []), ...((spec.containers as Container[] | undefined) ?? [])] : [];
}

export function podSpecOf(o: K8sObject): Record<string, unknown> | undefined {
  const template = (o.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template;
  return ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet'].includes(o.kind) ? template?.spec : undefined;
}

function splitImage(image: string): [string, string | undefined] {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, undefined];
}

export const DEPLOY_DIR = resolve(dirname(__filename), '..');
