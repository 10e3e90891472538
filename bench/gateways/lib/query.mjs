// The benchmark operation, as sent by the public benchmark's k6.js
// (graphql-hive/graphql-gateways-benchmark). Plans into 16 subgraph fetches
// with @apollo/query-planner and returns ~87 KB of JSON.
export const QUERY = `fragment User on User {
      id
      username
      name
    }

    fragment Review on Review {
      id
      body
    }

    fragment Product on Product {
      inStock
      name
      price
      shippingEstimate
      upc
      weight
    }

    query TestQuery {
      users {
        ...User
        reviews {
          ...Review
          product {
            ...Product
            reviews {
              ...Review
              author {
                ...User
                reviews {
                  ...Review
                  product {
                    ...Product
                  }
                }
              }
            }
          }
        }
      }
      topProducts {
        ...Product
        reviews {
          ...Review
          author {
            ...User
            reviews {
              ...Review
              product {
                ...Product
              }
            }
          }
        }
      }
    }`;

export const REQUEST_BODY = JSON.stringify({ query: QUERY });
