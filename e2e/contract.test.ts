/**
 * The public API may grow but never break: the API schema clients see (clients/schema.graphql,
 * composed from the subgraphs by `npm run codegen`) keeps every type, field, argument and enum
 * value of the fixed contract (../shared/contract/api.graphql, extended by
 * ../shared/contract/additions-2026-12.graphql) with a compatible type.
 * Additions (new fields, new enum values such as SagaStatus.TIMED_OUT) are allowed.
 * The additions file describes `notificationAdded(after: ID)` in a comment only (no SDL), so that
 * argument is not part of this check; every SDL addition (inputs and mutations) is.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSchema, findBreakingChanges } from 'graphql';
import { ROOT } from '@crm/platform';

const CONTRACT = join(ROOT, '../shared/contract/api.graphql');
const ADDITIONS = join(ROOT, '../shared/contract/additions-2026-12.graphql');

const ours = () => buildSchema(readFileSync(join(ROOT, 'clients/schema.graphql'), 'utf8'));

(existsSync(CONTRACT) ? test : test.skip)('the composed API schema only adds to the contract', () => {
  const contract = buildSchema(readFileSync(CONTRACT, 'utf8'));
  expect(findBreakingChanges(contract, ours()).map((c) => `${c.type}: ${c.description}`)).toEqual([]);
});

(existsSync(CONTRACT) && existsSync(ADDITIONS) ? test : test.skip)('the composed API schema has every addition of additions-2026-12, with its types', () => {
  const contract = buildSchema(`${readFileSync(CONTRACT, 'utf8')}\n${readFileSync(ADDITIONS, 'utf8')}`);
  expect(findBreakingChanges(contract, ours()).map((c) => `${c.type}: ${c.description}`)).toEqual([]);
  // the check above sees them: the additions are really in the contract it reads
  const added = contract.getMutationType()!.getFields();
  for (const name of ['changePassword', 'requestPasswordReset', 'resetPassword', 'updateMeeting', 'deleteMeeting', 'updateApprovalRequest', 'deleteNotification']) {
    expect(added[name]).toBeDefined();
    expect(ours().getMutationType()!.getFields()[name]?.type.toString()).toBe(added[name]!.type.toString());
  }
});
