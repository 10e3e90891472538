export * from './notification';
export * from './saga';
export * from './projections';
import { NotificationSchema } from './notification';
import { SagaSchema, SagaStepSchema } from './saga';
import {
  ApprovalFactSchema, CustomerFactSchema, EventMetricSchema, MeetingFactSchema, ReportVersionSchema, TaskFactSchema, UserRefSchema,
} from './projections';

export const entities = [
  NotificationSchema, SagaSchema, SagaStepSchema, UserRefSchema, CustomerFactSchema, MeetingFactSchema, TaskFactSchema,
  ApprovalFactSchema, EventMetricSchema, ReportVersionSchema,
];
