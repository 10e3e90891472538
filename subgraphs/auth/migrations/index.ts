import { Migration20261122000100 } from './Migration20261122000100';
import { Migration20261129000100 } from './Migration20261129000100';
import { Migration20261207000100 } from './Migration20261207000100';

/** Applied in this order on start and by `npm run migrate`. */
export const migrations = [
  { name: 'Migration20261122000100', class: Migration20261122000100 },
  { name: 'Migration20261129000100', class: Migration20261129000100 },
  { name: 'Migration20261207000100', class: Migration20261207000100 },
];
