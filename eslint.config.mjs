// @ts-check
/**
 * ESLint over every TypeScript file of the repository (`npm run lint`, zero warnings), with
 * typescript-eslint's type-checked rules: recommendedTypeChecked + stylisticTypeChecked, the types
 * from tsconfig.json (projectService). Generated code is not linted. Every rule relaxed below says
 * why; CONTRIBUTING.md lists the same.
 */
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      'clients/src/gql/**',
      'subgraphs/*/src/generated/**',
      '**/dist/**',
      'coverage/**',
      '.data/**',
      // plain JavaScript (bench runners, jest config) is not type-checked; only TypeScript is linted
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
    ],
  },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked, tseslint.configs.stylisticTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Relaxed: `async` marks functions that fulfil a Promise-returning contract (resolvers, event
      // handlers, bus and store interfaces, jest callbacks) even when their body has no await; dropping
      // it would turn a thrown error into a synchronous throw instead of a rejection.
      '@typescript-eslint/require-await': 'off',
      // Relaxed: the code compares graphql-js string enums (Kind, OperationTypeNode) with their literal
      // values (`node.kind === 'Field'`); TypeScript already rejects a literal that is not a member.
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
      // Relaxed: an explicit `any` is written only where a library's generic is itself any-typed
      // (MikroORM EntityName<any>, graphql-js ListType<any>); the no-unsafe-* rules still flag every
      // use of an any value.
      '@typescript-eslint/no-explicit-any': 'off',
      // Narrowed: `x || fallback` on strings and booleans deliberately treats '' and false as absent
      // (environment variables, headers, form fields); `??` would keep them.
      '@typescript-eslint/prefer-nullish-coalescing': ['error', { ignorePrimitives: { string: true, boolean: true } }],
      // Narrowed: `() => {}` is the code's no-op callback (ignored rejections, listeners, stubs).
      '@typescript-eslint/no-empty-function': ['error', { allow: ['arrowFunctions'] }],
      // Narrowed: a variable declared before the closures that read it and assigned once later
      // (timers, servers a callback closes over) stays `let`.
      'prefer-const': ['error', { destructuring: 'all', ignoreReadBeforeAssign: true }],
      // Relaxed: `let x = fallback; try { x = parse() } catch {}` is the code's way to keep a default
      // when parsing fails; the rule reports the fallback as useless.
      'no-useless-assignment': 'off',
      // Narrowed: a leading underscore marks a deliberately unused binding (`{ stacktrace: _s, ...rest }`).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // Relaxed in tests and benchmarks: they read GraphQL and HTTP responses as untyped JSON
    // (`res.body.data.x`) and assert on or tabulate them; typing every response would only restate the schema.
    files: ['**/test/**/*.ts', 'e2e/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
);
