/** The opportunity subgraph as a service of its own: its container's entry (Dockerfile), `npm start -w subgraphs/opportunity`. */
import { runSubgraph } from '@crm/kit';
import { opportunitySubgraph } from './index';

void runSubgraph(opportunitySubgraph);
