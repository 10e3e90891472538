/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "mutation RecordMeeting($input: RecordMeetingInput!) {\n  recordMeeting(input: $input) {\n    id\n  }\n}\n\nmutation CreateTask($input: CreateTaskInput!) {\n  createTask(input: $input) {\n    id\n    title\n    status\n  }\n}\n\nmutation CompleteTask($id: ID!) {\n  completeTask(id: $id) {\n    id\n    status\n  }\n}": typeof types.RecordMeetingDocument,
    "mutation RequestApproval($input: RequestApprovalInput!) {\n  requestApproval(input: $input) {\n    id\n    title\n    amount\n    status\n    createdAt\n    customer {\n      id\n      name\n    }\n    requester {\n      id\n      name\n    }\n  }\n}\n\nmutation ApproveRequest($id: ID!, $comment: String) {\n  approveRequest(id: $id, comment: $comment) {\n    id\n    status\n  }\n}\n\nmutation RejectRequest($id: ID!, $comment: String) {\n  rejectRequest(id: $id, comment: $comment) {\n    id\n    status\n  }\n}": typeof types.RequestApprovalDocument,
    "fragment Session on AuthPayload {\n  accessToken\n  refreshToken\n  expiresAt\n  user {\n    id\n    email\n    name\n    role\n  }\n}\n\nmutation Login($email: String!, $password: String!) {\n  login(email: $email, password: $password) {\n    ...Session\n  }\n}\n\nmutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    ...Session\n  }\n}\n\nmutation SetUserRole($id: ID!, $role: Role!) {\n  updateUser(id: $id, input: {role: $role}) {\n    id\n    role\n  }\n}\n\nquery Me {\n  me {\n    id\n    email\n    name\n    role\n  }\n}": typeof types.SessionFragmentDoc,
    "query Customers($search: String, $first: Int, $after: String) {\n  customers(search: $search, first: $first, after: $after) {\n    totalCount\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    edges {\n      node {\n        id\n        name\n        email\n        industry\n        assignedRep {\n          id\n          name\n        }\n      }\n    }\n  }\n}\n\nmutation CreateCustomer($input: CreateCustomerInput!) {\n  createCustomer(input: $input) {\n    id\n    name\n  }\n}": typeof types.CustomersDocument,
    "subscription NotificationAdded {\n  notificationAdded {\n    id\n    type\n    title\n    body\n    entityType\n    entityId\n    createdAt\n    recipient {\n      id\n      name\n    }\n  }\n}": typeof types.NotificationAddedDocument,
};
const documents: Documents = {
    "mutation RecordMeeting($input: RecordMeetingInput!) {\n  recordMeeting(input: $input) {\n    id\n  }\n}\n\nmutation CreateTask($input: CreateTaskInput!) {\n  createTask(input: $input) {\n    id\n    title\n    status\n  }\n}\n\nmutation CompleteTask($id: ID!) {\n  completeTask(id: $id) {\n    id\n    status\n  }\n}": types.RecordMeetingDocument,
    "mutation RequestApproval($input: RequestApprovalInput!) {\n  requestApproval(input: $input) {\n    id\n    title\n    amount\n    status\n    createdAt\n    customer {\n      id\n      name\n    }\n    requester {\n      id\n      name\n    }\n  }\n}\n\nmutation ApproveRequest($id: ID!, $comment: String) {\n  approveRequest(id: $id, comment: $comment) {\n    id\n    status\n  }\n}\n\nmutation RejectRequest($id: ID!, $comment: String) {\n  rejectRequest(id: $id, comment: $comment) {\n    id\n    status\n  }\n}": types.RequestApprovalDocument,
    "fragment Session on AuthPayload {\n  accessToken\n  refreshToken\n  expiresAt\n  user {\n    id\n    email\n    name\n    role\n  }\n}\n\nmutation Login($email: String!, $password: String!) {\n  login(email: $email, password: $password) {\n    ...Session\n  }\n}\n\nmutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    ...Session\n  }\n}\n\nmutation SetUserRole($id: ID!, $role: Role!) {\n  updateUser(id: $id, input: {role: $role}) {\n    id\n    role\n  }\n}\n\nquery Me {\n  me {\n    id\n    email\n    name\n    role\n  }\n}": types.SessionFragmentDoc,
    "query Customers($search: String, $first: Int, $after: String) {\n  customers(search: $search, first: $first, after: $after) {\n    totalCount\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    edges {\n      node {\n        id\n        name\n        email\n        industry\n        assignedRep {\n          id\n          name\n        }\n      }\n    }\n  }\n}\n\nmutation CreateCustomer($input: CreateCustomerInput!) {\n  createCustomer(input: $input) {\n    id\n    name\n  }\n}": types.CustomersDocument,
    "subscription NotificationAdded {\n  notificationAdded {\n    id\n    type\n    title\n    body\n    entityType\n    entityId\n    createdAt\n    recipient {\n      id\n      name\n    }\n  }\n}": types.NotificationAddedDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation RecordMeeting($input: RecordMeetingInput!) {\n  recordMeeting(input: $input) {\n    id\n  }\n}\n\nmutation CreateTask($input: CreateTaskInput!) {\n  createTask(input: $input) {\n    id\n    title\n    status\n  }\n}\n\nmutation CompleteTask($id: ID!) {\n  completeTask(id: $id) {\n    id\n    status\n  }\n}"): (typeof documents)["mutation RecordMeeting($input: RecordMeetingInput!) {\n  recordMeeting(input: $input) {\n    id\n  }\n}\n\nmutation CreateTask($input: CreateTaskInput!) {\n  createTask(input: $input) {\n    id\n    title\n    status\n  }\n}\n\nmutation CompleteTask($id: ID!) {\n  completeTask(id: $id) {\n    id\n    status\n  }\n}"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation RequestApproval($input: RequestApprovalInput!) {\n  requestApproval(input: $input) {\n    id\n    title\n    amount\n    status\n    createdAt\n    customer {\n      id\n      name\n    }\n    requester {\n      id\n      name\n    }\n  }\n}\n\nmutation ApproveRequest($id: ID!, $comment: String) {\n  approveRequest(id: $id, comment: $comment) {\n    id\n    status\n  }\n}\n\nmutation RejectRequest($id: ID!, $comment: String) {\n  rejectRequest(id: $id, comment: $comment) {\n    id\n    status\n  }\n}"): (typeof documents)["mutation RequestApproval($input: RequestApprovalInput!) {\n  requestApproval(input: $input) {\n    id\n    title\n    amount\n    status\n    createdAt\n    customer {\n      id\n      name\n    }\n    requester {\n      id\n      name\n    }\n  }\n}\n\nmutation ApproveRequest($id: ID!, $comment: String) {\n  approveRequest(id: $id, comment: $comment) {\n    id\n    status\n  }\n}\n\nmutation RejectRequest($id: ID!, $comment: String) {\n  rejectRequest(id: $id, comment: $comment) {\n    id\n    status\n  }\n}"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "fragment Session on AuthPayload {\n  accessToken\n  refreshToken\n  expiresAt\n  user {\n    id\n    email\n    name\n    role\n  }\n}\n\nmutation Login($email: String!, $password: String!) {\n  login(email: $email, password: $password) {\n    ...Session\n  }\n}\n\nmutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    ...Session\n  }\n}\n\nmutation SetUserRole($id: ID!, $role: Role!) {\n  updateUser(id: $id, input: {role: $role}) {\n    id\n    role\n  }\n}\n\nquery Me {\n  me {\n    id\n    email\n    name\n    role\n  }\n}"): (typeof documents)["fragment Session on AuthPayload {\n  accessToken\n  refreshToken\n  expiresAt\n  user {\n    id\n    email\n    name\n    role\n  }\n}\n\nmutation Login($email: String!, $password: String!) {\n  login(email: $email, password: $password) {\n    ...Session\n  }\n}\n\nmutation Register($input: RegisterInput!) {\n  register(input: $input) {\n    ...Session\n  }\n}\n\nmutation SetUserRole($id: ID!, $role: Role!) {\n  updateUser(id: $id, input: {role: $role}) {\n    id\n    role\n  }\n}\n\nquery Me {\n  me {\n    id\n    email\n    name\n    role\n  }\n}"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query Customers($search: String, $first: Int, $after: String) {\n  customers(search: $search, first: $first, after: $after) {\n    totalCount\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    edges {\n      node {\n        id\n        name\n        email\n        industry\n        assignedRep {\n          id\n          name\n        }\n      }\n    }\n  }\n}\n\nmutation CreateCustomer($input: CreateCustomerInput!) {\n  createCustomer(input: $input) {\n    id\n    name\n  }\n}"): (typeof documents)["query Customers($search: String, $first: Int, $after: String) {\n  customers(search: $search, first: $first, after: $after) {\n    totalCount\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    edges {\n      node {\n        id\n        name\n        email\n        industry\n        assignedRep {\n          id\n          name\n        }\n      }\n    }\n  }\n}\n\nmutation CreateCustomer($input: CreateCustomerInput!) {\n  createCustomer(input: $input) {\n    id\n    name\n  }\n}"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "subscription NotificationAdded {\n  notificationAdded {\n    id\n    type\n    title\n    body\n    entityType\n    entityId\n    createdAt\n    recipient {\n      id\n      name\n    }\n  }\n}"): (typeof documents)["subscription NotificationAdded {\n  notificationAdded {\n    id\n    type\n    title\n    body\n    entityType\n    entityId\n    createdAt\n    recipient {\n      id\n      name\n    }\n  }\n}"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;