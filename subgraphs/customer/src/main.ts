/** The customer subgraph as a service of its own: its container's entry (Dockerfile), `npm start -w subgraphs/customer`. */
import { runSubgraph } from '@crm/runtime';
import { customerSubgraph } from './index';

void runSubgraph(customerSubgraph);
