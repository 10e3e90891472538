import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, updatedAtColumn, defineRow } from '@crm/database';

export const COMPANY_SIZES = ['SMALL', 'MEDIUM', 'LARGE', 'ENTERPRISE'] as const;
export const INVESTMENT_PROFILES = ['CONSERVATIVE', 'MODERATE', 'AGGRESSIVE'] as const;
export const RISK_TOLERANCES = ['LOW', 'MEDIUM', 'HIGH'] as const;
export type CompanySize = (typeof COMPANY_SIZES)[number];
export type InvestmentProfile = (typeof INVESTMENT_PROFILES)[number];
export type RiskTolerance = (typeof RISK_TOLERANCES)[number];

/** A customer; soft-deleted rows (`deletedAt` set) are hidden from every read. */
export const Customer = defineRow({
  name: 'Customer',
  tableName: 'customers',
  properties: {
    id: p.uuid().primary(),
    name: p.text(),
    email: p.text().nullable(),
    phone: p.text().nullable(),
    industry: p.text().nullable(),
    size: p.text().$type<CompanySize>().nullable(),
    investmentProfile: p.text().$type<InvestmentProfile>().nullable().fieldName('investment_profile'),
    riskTolerance: p.text().$type<RiskTolerance>().nullable().fieldName('risk_tolerance'),
    assignedRepId: p.uuid().nullable().fieldName('assigned_rep_id'),
    createdAt: createdAtColumn(),
    updatedAt: updatedAtColumn(),
    deletedAt: p.datetime().nullable().fieldName('deleted_at'),
    /** The customer-deletion saga that soft-deleted it (compensation restores only that one). */
    deletedBySaga: p.uuid().nullable().fieldName('deleted_by_saga'),
  },
});
export type Customer = InferEntity<typeof Customer>;
