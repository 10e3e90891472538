import { Migration20261122000500 } from './Migration20261122000500';
import { Migration20261129000500 } from './Migration20261129000500';
import { Migration20261207000500 } from './Migration20261207000500';
import { Migration20261207000600 } from './Migration20261207000600';
import { Migration20261207000700 } from './Migration20261207000700';

/** Applied in this order on start and by `npm run migrate`. */
export const migrations = [
  { name: 'Migration20261122000500', class: Migration20261122000500 },
  { name: 'Migration20261129000500', class: Migration20261129000500 },
  { name: 'Migration20261207000500', class: Migration20261207000500 },
  { name: 'Migration20261207000600', class: Migration20261207000600 },
  { name: 'Migration20261207000700', class: Migration20261207000700 },
];
