// Computes the expected response of the benchmark query independently of any
// gateway: a plain (non-federated) GraphQL schema with the same shape as the
// supergraph API schema, whose resolvers encode the federation semantics of
// the subgraphs (Review.author comes from reviews' @provides = user 1
// "urigo"; name comes from accounts; every user's reviews are reviews 1 and 2;
// inventory ignores @requires inputs so shippingEstimate is null).
import { buildSchema, parse, execute } from 'graphql';
import { USERS, PRODUCTS, INVENTORY, REVIEWS, USER_REVIEWS, AUTHOR } from './data.mjs';
import { QUERY } from './query.mjs';

const schema = buildSchema(`
type Query { me: User  user(id: ID!): User  users: [User]  topProducts(first: Int = 5): [Product] }
type User { id: ID!  name: String  username: String  birthday: Int  reviews: [Review] }
type Product { upc: String!  weight: Int  price: Int  inStock: Boolean  shippingEstimate: Int  name: String  reviews: [Review] }
type Review { id: ID!  body: String  product: Product  author: User }
`);

const product = (upc) => {
  const p = PRODUCTS.find((x) => x.upc === upc);
  const inv = INVENTORY.find((x) => x.upc === upc);
  return { ...p, inStock: inv?.inStock ?? null, shippingEstimate: null };
};
const user = (u) => ({ ...u, reviews: USER_REVIEWS });
const review = (r) => ({ id: r.id, body: r.body, productUpc: r.productUpc });

const rootValue = {
  users: () => USERS.map(user),
  topProducts: ({ first }) => PRODUCTS.slice(0, first ?? 5).map((p) => product(p.upc)),
};
const fieldResolver = (source, args, ctx, info) => {
  const t = info.parentType.name;
  const f = info.fieldName;
  if (t === 'Query') return rootValue[f](args);
  if (t === 'User' && f === 'reviews') return USER_REVIEWS.map(review);
  if (t === 'Product' && f === 'reviews') return REVIEWS.filter((r) => r.productUpc === source.upc).map(review);
  if (t === 'Review' && f === 'product') return product(source.productUpc);
  if (t === 'Review' && f === 'author') {
    const accounts = USERS.find((u) => u.id === AUTHOR.id);
    return { ...accounts, username: AUTHOR.username };
  }
  return source[f];
};

export function expectedResult() {
  const result = execute({ schema, document: parse(QUERY), fieldResolver });
  if (result.errors) throw new Error('expected-result execution failed: ' + result.errors[0].message);
  return JSON.parse(JSON.stringify(result));
}
