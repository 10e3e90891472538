import { Migration20261122000400 } from './Migration20261122000400';
import { Migration20261129000400 } from './Migration20261129000400';
import { Migration20261207000400 } from './Migration20261207000400';

/** Applied in this order on start and by `npm run migrate`. */
export const migrations = [
  { name: 'Migration20261122000400', class: Migration20261122000400 },
  { name: 'Migration20261129000400', class: Migration20261129000400 },
  { name: 'Migration20261207000400', class: Migration20261207000400 },
];
