import { EntitySchema } from '@mikro-orm/postgresql';

/** The local customer directory, built from customer.* events; validates customerId on writes. */
export class CustomerRef {
  id!: string;
  name!: string;
  assignedRepId: string | null = null;
  deleted = false;
  updatedAt: Date = new Date();
}

export const CustomerRefSchema = new EntitySchema<CustomerRef>({
  class: CustomerRef,
  tableName: 'customer_refs',
  properties: {
    id: { type: 'uuid', primary: true },
    name: { type: 'text' },
    assignedRepId: { type: 'uuid', nullable: true, fieldName: 'assigned_rep_id' },
    deleted: { type: 'boolean' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at' },
  },
});
