// The four subgraphs (Federation v1-style SDL, as in the public benchmark:
// @key / @external / @requires / @provides, `extend type`, no @link).
import { parse } from 'graphql';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { USERS, PRODUCTS, INVENTORY, REVIEWS, USER_REVIEWS, AUTHOR, REVIEWS_USER_USERNAME } from '../lib/data.mjs';

export const typeDefs = {
  accounts: `
extend type Query {
  me: User
  user(id: ID!): User
  users: [User]
}

type User @key(fields: "id") {
  id: ID!
  name: String
  username: String
  birthday: Int
}
`,
  inventory: `
extend type Product @key(fields: "upc") {
  upc: String! @external
  weight: Int @external
  price: Int @external
  inStock: Boolean
  shippingEstimate: Int @requires(fields: "price weight")
}
`,
  products: `
type Product @key(fields: "upc") {
  upc: String!
  name: String
  price: Int
  weight: Int
}

extend type Query {
  topProducts(first: Int = 5): [Product]
}
`,
  reviews: `
extend type Product @key(fields: "upc") {
  upc: String! @external
  reviews: [Review]
}

type Review @key(fields: "id") {
  id: ID!
  body: String
  product: Product
  author: User @provides(fields: "username")
}

extend type User @key(fields: "id") {
  id: ID! @external
  username: String @external
  reviews: [Review]
}
`,
};

const reviewsUser = (id, username) => ({ id, username, reviews: USER_REVIEWS });

export const resolvers = {
  accounts: {
    Query: {
      me: () => USERS[0],
      user: (_, { id }) => USERS.find((u) => u.id === id) ?? null,
      users: () => USERS,
    },
    User: {
      __resolveReference: (ref) => USERS.find((u) => u.id === ref.id) ?? null,
    },
  },
  inventory: {
    Product: {
      // Like the reference (Rust) subgraph: the looked-up row has no
      // price/weight (the representation's @requires fields are ignored).
      __resolveReference: (ref) => {
        const row = INVENTORY.find((p) => p.upc === ref.upc);
        return row ? { ...row, price: null, weight: null } : null;
      },
      shippingEstimate: (p) => {
        if (p.price == null) return null;
        if (p.price > 1000) return 0;
        return p.weight == null ? null : Math.trunc(p.weight / 2);
      },
    },
  },
  products: {
    Query: {
      topProducts: (_, { first }) => PRODUCTS.slice(0, first ?? 5),
    },
    Product: {
      __resolveReference: (ref) => PRODUCTS.find((p) => p.upc === ref.upc) ?? null,
    },
  },
  reviews: {
    Review: {
      __resolveReference: (ref) => REVIEWS.find((r) => r.id === ref.id) ?? null,
      product: (r) => ({ upc: r.productUpc }),
      author: () => reviewsUser(AUTHOR.id, AUTHOR.username),
    },
    User: {
      __resolveReference: (ref) => reviewsUser(ref.id, REVIEWS_USER_USERNAME),
      reviews: (u) => u.reviews ?? USER_REVIEWS,
    },
    Product: {
      __resolveReference: (ref) => ({ upc: ref.upc }),
      reviews: (p) => REVIEWS.filter((r) => r.productUpc === p.upc),
    },
  },
};

export const SUBGRAPH_NAMES = ['accounts', 'inventory', 'products', 'reviews'];

export function buildSchemas() {
  const out = {};
  for (const name of SUBGRAPH_NAMES) {
    out[name] = buildSubgraphSchema([{ typeDefs: parse(typeDefs[name]), resolvers: resolvers[name] }]);
  }
  return out;
}

// Port layout: BASE+1..BASE+4 (default 4591..4594).
export function subgraphPorts(base = Number(process.env.SUBGRAPH_BASE_PORT ?? 4590)) {
  return Object.fromEntries(SUBGRAPH_NAMES.map((n, i) => [n, base + 1 + i]));
}
export function subgraphUrls(base) {
  const ports = subgraphPorts(base);
  return Object.fromEntries(SUBGRAPH_NAMES.map((n) => [n, `http://127.0.0.1:${ports[n]}/graphql`]));
}
