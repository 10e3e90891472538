/**
 * Which mutations make a gateway replica forget its cached token states (features/token-denylist.ts):
 * the root Mutation fields auth resolves, read from the composed supergraph.
 */
import { join } from 'node:path';
import { composeSupergraph, readSupergraphConfig } from '../src/compose';
import { mutationFieldsOf } from '../src/features/token-denylist';

test("auth's mutation fields are read from the supergraph; other subgraphs' are not among them", () => {
  const sdl = composeSupergraph(readSupergraphConfig(join(__dirname, '../../supergraph.yaml'), {}));
  const fields = mutationFieldsOf(sdl, 'AUTH');
  for (const f of ['logout', 'updateUser', 'deleteUser', 'approveUser', 'refreshToken']) expect(fields).toContain(f);
  expect(fields).not.toContain('createCustomer');
  expect(fields).not.toContain('approveRequest');
  expect(mutationFieldsOf('not a schema', 'AUTH').size).toBe(0);
});
