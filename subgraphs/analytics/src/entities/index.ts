export * from './notification';
export * from './saga';
export * from './projections';
import { Notification } from './notification';
import { Saga, SagaStep } from './saga';
import { ApprovalFact, CustomerFact, EventMetric, MeetingFact, ReportVersion, TaskFact, UserRef } from './projections';

export const entities = [Notification, Saga, SagaStep, UserRef, CustomerFact, MeetingFact, TaskFact, ApprovalFact, EventMetric, ReportVersion];
