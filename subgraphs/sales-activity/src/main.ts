/** The sales-activity subgraph as a service of its own: its container's entry (Dockerfile), `npm start -w subgraphs/sales-activity`. */
import { runSubgraph } from '@crm/runtime';
import { salesActivitySubgraph } from './index';

void runSubgraph(salesActivitySubgraph);
