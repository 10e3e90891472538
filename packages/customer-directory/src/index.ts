/** Customer directory: the copy of customers the domains that refer to them keep (opportunity, sales-activity). */
export * from './customer-directory';
