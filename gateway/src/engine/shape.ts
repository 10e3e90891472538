/**
 * Result shaping, compiled once per operation: turns the merged subgraph data into the response
 * the operation asked for (response names, `__typename`, @skip/@include, fragments by runtime type,
 * leaf validation, null propagation up to the nearest nullable field). Same output and errors as
 * Apollo Gateway's `computeResponse` (resultShaping.ts), which walks the operation's selection
 * objects on every request; here the walk is over a flat program prepared per document:
 * response names, conditions, fragment applicability and field types are looked up once.
 * Operations with schema introspection do not come here (see ./plan-executor.ts).
 */
import * as federation from '@apollo/federation-internals';
import type { CompositeType, Directive, ListType, NamedType, NonNullType, Operation, Schema, SelectionSet, Type } from '@apollo/federation-internals';
import type { GraphQLError } from 'graphql';

// Bound once: the package's index re-exports through getters, which cost a call each time on the hot path.
const { ERRORS, Variable, isSubtype, isValidLeafValue, typenameFieldName } = federation;
const isNonNull = (t: Type): t is NonNullType<any> => t.kind === 'NonNullType';
const isList = (t: Type): t is ListType<any> => t.kind === 'ListType';
const isComposite = (t: Type | NamedType): t is CompositeType => t.kind === 'ObjectType' || t.kind === 'InterfaceType' || t.kind === 'UnionType';

/** A @skip/@include condition: a constant, or the variable that decides it. */
type Condition = { skip: boolean | string | undefined; include: boolean | string | undefined } | null;

interface FieldStep {
  field: true;
  responseName: string;
  condition: Condition;
  /** `__typename` (possibly aliased). */
  typename: boolean;
  type: Type;
  selection: Step[] | undefined;
}

interface FragmentStep {
  field: false;
  condition: Condition;
  typeCondition: CompositeType | undefined;
  selection: Step[];
  /** Whether the fragment applies to an object of a given __typename (memoised). */
  applies: Map<string, boolean>;
}

type Step = FieldStep | FragmentStep;

export interface ShapeProgram {
  steps: Step[];
  schema: Schema;
  root: CompositeType;
  defaults: Record<string, unknown>;
}

export function compileShape(operation: Operation): ShapeProgram {
  const schema = operation.schema();
  const programs = new Map<SelectionSet, Step[]>();
  const compile = (set: SelectionSet): Step[] => {
    const known = programs.get(set);
    if (known) return known;
    const steps: Step[] = [];
    programs.set(set, steps);
    for (const selection of set.selections()) {
      const condition = conditionOf(schema, selection.element.appliedDirectives as readonly Directive<any>[]);
      if (selection.kind === 'FieldSelection') {
        const field = selection.element;
        steps.push({
          field: true,
          responseName: field.responseName(),
          condition,
          typename: field.name === typenameFieldName,
          type: field.definition.type!,
          selection: selection.selectionSet ? compile(selection.selectionSet) : undefined,
        });
      } else {
        steps.push({ field: false, condition, typeCondition: selection.element.typeCondition, selection: compile(selection.selectionSet), applies: new Map() });
      }
    }
    return steps;
  };
  return {
    steps: compile(operation.selectionSet),
    schema,
    root: schema.schemaDefinition.rootType(operation.rootKind)!,
    defaults: operation.collectDefaultedVariableValues(),
  };
}

function conditionOf(schema: Schema, directives: readonly Directive<any>[]): Condition {
  if (directives.length === 0) return null;
  const arg = (d: Directive<any> | undefined): boolean | string | undefined => {
    if (!d) return undefined;
    const value = (d.arguments() as { if: unknown }).if;
    return value instanceof Variable ? value.name : (value as boolean);
  };
  const skip = arg(directives.find((d) => d.definition === schema.skipDirective()));
  const include = arg(directives.find((d) => d.definition === schema.includeDirective()));
  return skip === undefined && include === undefined ? null : { skip, include };
}

interface Run {
  schema: Schema;
  variables: Record<string, unknown>;
  errors: GraphQLError[];
  path: (string | number)[];
}

// updateValue's secondary results (Apollo returns { updated, isInvalid, hasErrors } objects).
let isInvalid = false;
let hasErrors = false;

export function shapeResponse(
  program: ShapeProgram,
  variables: Record<string, unknown> | undefined,
  input: Record<string, unknown> | null | undefined,
): { data: Record<string, unknown> | null | undefined; errors: GraphQLError[] } {
  if (!input) return { data: input, errors: [] };
  const run: Run = { schema: program.schema, variables: { __proto__: null, ...program.defaults, ...variables }, errors: [], path: [] };
  const data: Record<string, unknown> = {};
  const bubbled = applySteps(run, program.steps, input, data, program.root);
  return { data: bubbled ? null : data, errors: run.errors };
}

/**
 * Output objects are plain `{}` (fast properties: cheaper to build, to keep and to JSON.stringify than
 * Apollo's prototype-less dictionaries); an alias named `__proto__` is defined as an own property.
 */
export function setOwn(output: Record<string, unknown>, name: string, value: unknown): void {
  if (name === '__proto__') Object.defineProperty(output, name, { value, enumerable: true, writable: true, configurable: true });
  else output[name] = value;
}

function skipped(condition: Condition, variables: Record<string, unknown>): boolean {
  if (condition === null) return false;
  const value = (c: boolean | string): boolean => {
    if (typeof c === 'boolean') return c;
    const v = variables[c];
    if (typeof v !== 'boolean') throw new Error(`Unexpected value ${String(v)} for variable $${c}`);
    return v;
  };
  return (condition.skip !== undefined && value(condition.skip)) || (condition.include !== undefined && !value(condition.include));
}

/** Returns true when a null must bubble up from this object (Apollo's NULL_BUBBLE_UP). */
function applySteps(run: Run, steps: Step[], input: Record<string, unknown>, output: Record<string, unknown>, parentType: CompositeType): boolean {
  for (const step of steps) {
    if (skipped(step.condition, run.variables)) continue;
    if (step.field) {
      const name = step.responseName;
      // own properties only: `{}` inherits `constructor`, `toString`, … which are valid response names
      const outputValue = Object.prototype.hasOwnProperty.call(output, name) ? output[name] : undefined;
      let inputValue: unknown = Object.prototype.hasOwnProperty.call(input, name) ? input[name] : undefined;
      if (inputValue === undefined) inputValue = null;
      if (step.typename) {
        if (outputValue === undefined) {
          if (inputValue === null && name !== typenameFieldName) inputValue = input[typenameFieldName] ?? null;
          const type = typeof inputValue === 'string' ? (run.schema.type(inputValue) ?? parentType) : parentType;
          if (type.kind !== 'ObjectType') return true;
          setOwn(output, name, type.name);
        }
        continue;
      }
      run.path.push(name);
      const updated = updateValue(run, outputValue, step.type, inputValue, step.selection, parentType);
      setOwn(output, name, updated);
      run.path.pop();
      if (isInvalid) return true;
    } else {
      const typename = input[typenameFieldName];
      if (typename && typeof typename !== 'string') throw new Error(`Got unexpected value for __typename: ${String(typename)}`);
      if (fragmentApplies(run.schema, step, typename as string | undefined, parentType)) {
        if (applySteps(run, step.selection, input, output, step.typeCondition ?? parentType)) return true;
      }
    }
  }
  return false;
}

function fragmentApplies(schema: Schema, step: FragmentStep, typename: string | undefined, parentType: CompositeType): boolean {
  const condition = step.typeCondition;
  if (!condition) return true;
  if (!typename) return isSubtype(condition, parentType);
  let applies = step.applies.get(typename);
  if (applies === undefined) {
    const type = schema.type(typename);
    applies = !!type && isSubtype(condition, type);
    step.applies.set(typename, applies);
  }
  return applies;
}

function lastElementDescription(path: (string | number)[], type: Type, parentType: CompositeType): string {
  const element = path[path.length - 1];
  return typeof element === 'string' ? `field ${parentType}.${element}` : `array element of type ${type} at index ${element}`;
}

/** Apollo's updateOutputValue: returns `updated`, sets isInvalid / hasErrors. */
function updateValue(run: Run, outputValue: unknown, type: Type, inputValue: unknown, selection: Step[] | undefined, parentType: CompositeType): unknown {
  isInvalid = false;
  hasErrors = false;
  if (outputValue === null || (outputValue !== undefined && !selection)) return outputValue;

  if (isNonNull(type)) {
    const updated = updateValue(run, outputValue, type.ofType, inputValue, selection, parentType);
    if (updated === null) {
      if (!hasErrors) {
        run.errors.push(
          ERRORS.INVALID_GRAPHQL.err(`Cannot return null for non-nullable ${lastElementDescription(run.path, type.ofType, parentType)}.`, { path: Array.from(run.path) }),
        );
      }
      isInvalid = true;
      hasErrors = true;
      return updated;
    }
    isInvalid = false;
    hasErrors = false;
    return updated;
  }

  if (inputValue === null) return null;

  if (isList(type)) {
    if (!Array.isArray(inputValue)) throw new Error(`Invalid non-list value ${String(inputValue)} returned by subgraph for list type ${type}`);
    if (outputValue !== undefined && !Array.isArray(outputValue)) throw new Error(`Invalid non-list value ${String(outputValue)} returned by subgraph for list type ${type}`);
    const previous = outputValue as unknown[] | undefined;
    if (previous && previous.length !== inputValue.length) throw new Error(`[${inputValue}].length (${inputValue.length}) !== [${previous}].length (${previous.length})`);
    let nullify = false;
    let anyErrors = false;
    const updated = new Array<unknown>(inputValue.length);
    for (let i = 0; i < inputValue.length; i++) {
      run.path.push(i);
      updated[i] = updateValue(run, previous ? previous[i] : undefined, type.ofType, inputValue[i], selection, parentType);
      run.path.pop();
      nullify ||= isInvalid;
      anyErrors ||= hasErrors;
    }
    isInvalid = false;
    hasErrors = anyErrors;
    return nullify ? null : updated;
  }

  if (isComposite(type)) {
    if (!selection) throw new Error(`Invalid empty selection set for composite type ${type}`);
    if (typeof inputValue !== 'object') throw new Error(`Invalid non-object value ${String(inputValue)} returned by subgraph for composite type ${type}`);
    if (outputValue !== undefined && typeof outputValue !== 'object')
      throw new Error(`Invalid non-object value ${String(inputValue)} returned by subgraph for composite type ${type}`);
    const object = inputValue as Record<string, unknown>;
    const inputTypename = object[typenameFieldName];
    if (inputTypename !== undefined && typeof inputTypename !== 'string') throw new Error(`Invalid non-string value ${String(inputTypename)} for __typename at ${run.path}`);
    let objectType: CompositeType = type;
    if (inputTypename) {
      const named = run.schema.type(inputTypename);
      if (!named || !isComposite(named)) {
        run.errors.push(
          ERRORS.INVALID_GRAPHQL.err(`Invalid __typename found for object at ${lastElementDescription(run.path, type, parentType)}.`, { path: Array.from(run.path) }),
        );
        isInvalid = false;
        hasErrors = true;
        return null;
      }
      objectType = named;
    }
    const out = (outputValue === undefined ? {} : outputValue) as Record<string, unknown>;
    const bubbled = applySteps(run, selection, object, out, objectType);
    isInvalid = false;
    hasErrors = bubbled;
    return bubbled ? null : out;
  }

  if (outputValue !== undefined) throw new Error(`Excepted output to be undefined but got ${type} for type ${type}`);
  const valid = isValidLeafValue(run.schema, inputValue, type as Parameters<typeof isValidLeafValue>[2]);
  if (!valid) run.errors.push(ERRORS.INVALID_GRAPHQL.err(`Invalid value found for ${lastElementDescription(run.path, type, parentType)}.`, { path: Array.from(run.path) }));
  isInvalid = false;
  hasErrors = !valid;
  return valid ? inputValue : null;
}
