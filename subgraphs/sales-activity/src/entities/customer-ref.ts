/** The local customer directory is shared with other subgraphs through the kit. */
export { CustomerRef, CustomerRefSchema } from '@crm/customer-directory';
