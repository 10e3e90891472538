/** The opportunity subgraph as a service of its own: its container's entry (Dockerfile), `npm start -w subgraphs/opportunity`. */
import { runSubgraph } from '@crm/runtime';
import { opportunitySubgraph } from './index';

void runSubgraph(opportunitySubgraph);
