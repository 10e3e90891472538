/** The analytics subgraph as a service of its own: its container's entry (Dockerfile), `npm start -w subgraphs/analytics`. */
import { runSubgraph } from '@crm/runtime';
import { analyticsSubgraph } from './index';

void runSubgraph(analyticsSubgraph);
