import { Migration20261122000200 } from './Migration20261122000200';
import { Migration20261129000200 } from './Migration20261129000200';
import { Migration20261207000200 } from './Migration20261207000200';
import { Migration20261207000210 } from './Migration20261207000210';

/** Applied in this order on start and by `npm run migrate`. */
export const migrations = [
  { name: 'Migration20261122000200', class: Migration20261122000200 },
  { name: 'Migration20261129000200', class: Migration20261129000200 },
  { name: 'Migration20261207000200', class: Migration20261207000200 },
  { name: 'Migration20261207000210', class: Migration20261207000210 },
];
