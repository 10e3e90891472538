/**
 * The data rewrites of a query plan's fetches (`inputRewrites` / `outputRewrites`: a value set, or a
 * key renamed, at a path that may pass through `... on Type` conditions) and the paths of the
 * entities a fetch was sent for. The query plan format is @apollo/query-planner's public one; these
 * are the engine's own readings of it (the gateway package keeps its versions in unexported files).
 */
import type { FetchDataRewrite, ResponsePath } from '@apollo/query-planner';
import { isAbstractType, isInterfaceType, isObjectType, type GraphQLSchema } from 'graphql';

const FRAGMENT_PREFIX = '... on ';
const hasOwn = (object: object, key: string) => Object.prototype.hasOwnProperty.call(object, key);
const ownValue = (object: Record<string, unknown>, key: string) => (hasOwn(object, key) ? object[key] : undefined);

/** Makes `key` an own property (undefined) when the object only inherits it (e.g. `constructor`), so an assignment cannot reach the prototype. */
function ownKey(object: Record<string, unknown>, key: string): void {
  if (!hasOwn(object, key) && key in object) Object.defineProperty(object, key, { configurable: true, enumerable: true, value: undefined, writable: true });
}

/**
 * Whether `object` (with its __typename) is of `typeCondition`: the same type, or an object or
 * interface type that is a possible type of the abstract `typeCondition`. Without a __typename: `unknown`.
 */
export function isObjectOfType(schema: GraphQLSchema, object: Record<string, unknown>, typeCondition: string, unknown = false): boolean {
  const typename = object.__typename;
  if (!typename) return unknown;
  if (typename === typeCondition) return true;
  const type = schema.getType(String(typename));
  const condition = schema.getType(typeCondition);
  if (!type || !condition || !isAbstractType(condition)) return false;
  return (isObjectType(type) || isInterfaceType(type)) && schema.isSubType(condition, type);
}

/** Applies a fetch's rewrites to `value` (an entity, a representation or a whole answer), in place. */
export function applyRewrites(schema: GraphQLSchema, rewrites: FetchDataRewrite[] | undefined, value: unknown): void {
  if (!rewrites) return;
  for (const rewrite of rewrites) {
    if (rewrite.path.length === 0) continue;
    const last = rewrite.path[rewrite.path.length - 1]!;
    if (last.startsWith(FRAGMENT_PREFIX)) throw new Error(`Unexpected fragment as last element of ${rewrite.path.join('.')}`);
    const change =
      rewrite.kind === 'ValueSetter'
        ? (object: Record<string, unknown>) => {
            ownKey(object, last);
            object[last] = rewrite.setValueTo;
          }
        : (object: Record<string, unknown>) => {
            const found = ownValue(object, last);
            if (!found) return;
            ownKey(object, rewrite.renameKeyTo);
            object[rewrite.renameKeyTo] = found;
            object[last] = undefined;
          };
    applyAt(schema, rewrite.path, 0, rewrite.path.length - 1, value, change);
  }
}

function applyAt(schema: GraphQLSchema, path: string[], from: number, end: number, value: unknown, change: (object: Record<string, unknown>) => void): void {
  if (Array.isArray(value)) {
    for (const element of value) applyAt(schema, path, from, end, element, change);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  const object = value as Record<string, unknown>;
  if (from === end) {
    change(object);
    return;
  }
  const element = path[from]!;
  if (!element.startsWith(FRAGMENT_PREFIX)) applyAt(schema, path, from + 1, end, ownValue(object, element), change);
  else if (isObjectOfType(schema, object, element.slice(FRAGMENT_PREFIX.length), true)) applyAt(schema, path, from + 1, end, object, change);
}

/**
 * The full response paths of the entities at `path` in `data` (`@`: every element of a list; lists
 * met on a field path are walked too), in the order the fetch's representations were built: a
 * subgraph's `_entities` error at index i belongs to the i-th of them.
 */
export function hydratedPaths(path: ResponsePath, data: unknown): ResponsePath[] {
  const out: ResponsePath[] = [];
  const walk = (parent: (string | number)[], from: number, value: unknown): void => {
    if (value === null || value === undefined) return;
    if (from === path.length) {
      out.push(parent.slice());
      return;
    }
    const head = path[from];
    if (head === '@') {
      if (!Array.isArray(value)) throw new Error('expected array when encountering `@`');
      value.forEach((element, i) => {
        parent.push(i);
        walk(parent, from + 1, element);
        parent.pop();
      });
    } else if (typeof head === 'string') {
      if (Array.isArray(value)) {
        value.forEach((element, i) => {
          parent.push(i);
          walk(parent, from, element);
          parent.pop();
        });
      } else if (hasOwn(value, head)) {
        parent.push(head);
        walk(parent, from + 1, (value as Record<string, unknown>)[head]);
        parent.pop();
      }
    } else {
      throw new Error(`unknown path part "${String(head)}"`);
    }
  };
  walk([], 0, data);
  return out;
}
