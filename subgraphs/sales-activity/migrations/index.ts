import { Migration20261122000300 } from './Migration20261122000300';
import { Migration20261129000300 } from './Migration20261129000300';

/** Applied in this order on start and by `npm run migrate`. */
export const migrations = [
  { name: 'Migration20261122000300', class: Migration20261122000300 },
  { name: 'Migration20261129000300', class: Migration20261129000300 },
];
