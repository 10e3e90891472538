import { EntitySchema } from '@mikro-orm/postgresql';

export const COMPANY_SIZES = ['SMALL', 'MEDIUM', 'LARGE', 'ENTERPRISE'] as const;
export const INVESTMENT_PROFILES = ['CONSERVATIVE', 'MODERATE', 'AGGRESSIVE'] as const;
export const RISK_TOLERANCES = ['LOW', 'MEDIUM', 'HIGH'] as const;
export type CompanySize = (typeof COMPANY_SIZES)[number];
export type InvestmentProfile = (typeof INVESTMENT_PROFILES)[number];
export type RiskTolerance = (typeof RISK_TOLERANCES)[number];

/** A customer; soft-deleted rows (`deletedAt` set) are hidden from every read. */
export class Customer {
  id!: string;
  name!: string;
  email: string | null = null;
  phone: string | null = null;
  industry: string | null = null;
  size: CompanySize | null = null;
  investmentProfile: InvestmentProfile | null = null;
  riskTolerance: RiskTolerance | null = null;
  assignedRepId: string | null = null;
  createdAt: Date = new Date();
  updatedAt: Date = new Date();
  deletedAt: Date | null = null;
  /** The customer-deletion saga that soft-deleted it (compensation restores only that one). */
  deletedBySaga: string | null = null;
}

export const CustomerSchema = new EntitySchema<Customer>({
  class: Customer,
  tableName: 'customers',
  properties: {
    id: { type: 'uuid', primary: true },
    name: { type: 'text' },
    email: { type: 'text', nullable: true },
    phone: { type: 'text', nullable: true },
    industry: { type: 'text', nullable: true },
    size: { type: 'text', nullable: true },
    investmentProfile: { type: 'text', nullable: true, fieldName: 'investment_profile' },
    riskTolerance: { type: 'text', nullable: true, fieldName: 'risk_tolerance' },
    assignedRepId: { type: 'uuid', nullable: true, fieldName: 'assigned_rep_id' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at', onUpdate: () => new Date() },
    deletedAt: { type: 'datetime', nullable: true, fieldName: 'deleted_at' },
    deletedBySaga: { type: 'uuid', nullable: true, fieldName: 'deleted_by_saga' },
  },
});
