/** The auth subgraph as a service of its own: its container's entry (Dockerfile), `npm start -w subgraphs/auth`. */
import { runSubgraph } from '@crm/runtime';
import { authSubgraph } from './index';

void runSubgraph(authSubgraph);
