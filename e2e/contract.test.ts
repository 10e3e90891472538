/**
 * The public API may grow but never break: the API schema clients see (clients/schema.graphql,
 * composed from the subgraphs by `npm run codegen`) keeps every type, field, argument and enum
 * value of the fixed contract (../shared/contract/api.graphql) with a compatible type.
 * Additions (new fields, new enum values such as SagaStatus.TIMED_OUT) are allowed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSchema, findBreakingChanges } from 'graphql';
import { ROOT } from '@crm/platform';

const CONTRACT = join(ROOT, '../shared/contract/api.graphql');

(existsSync(CONTRACT) ? test : test.skip)('the composed API schema only adds to the contract', () => {
  const contract = buildSchema(readFileSync(CONTRACT, 'utf8'));
  const ours = buildSchema(readFileSync(join(ROOT, 'clients/schema.graphql'), 'utf8'));
  expect(findBreakingChanges(contract, ours).map((c) => `${c.type}: ${c.description}`)).toEqual([]);
});
