import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'build/', '.ferry/', 'tmp/', 'bin/', 'scripts/*.mjs', 'eslint.config.js'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // API responses in tests are JSON of many shapes; tests assert on them field by field.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The pure core must stay pure: no Node built-ins, no drivers, no store (STYLE.md §1).
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: ['node:*', 'fs', 'path', 'child_process', '../store/*', '../substrates/*', '../runner/*', 'kysely', 'better-sqlite3', 'pg', 'fastify'] },
      ],
    },
  },
  {
    // The operator console: plain browser ES modules, no build step and no type information.
    files: ['src/console/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['src/console/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'history',
          'fetch',
          'EventSource',
          'sessionStorage',
          'URLSearchParams',
          'TextDecoder',
          'AbortController',
          'Node',
          'setTimeout',
          'clearTimeout',
          'console',
        ].map((g) => [g, 'readonly']),
      ),
    },
    rules: { 'no-undef': 'error' },
  },
  // The seams import downwards only (docs/architecture.md): core <- store, substrates <- runner <- tracker, api <- cli.
  ...[
    ['src/store/**/*.ts', ['**/runner/*', '**/api/*', '**/tracker/*', '**/substrates/*', '**/cli/*', 'fastify']],
    ['src/substrates/**/*.ts', ['**/store/*', '**/runner/*', '**/api/*', '**/tracker/*', '**/cli/*', 'fastify', 'kysely']],
    ['src/runner/**/*.ts', ['**/api/*', '**/tracker/*', '**/cli/*', 'fastify']],
    ['src/tracker/**/*.ts', ['**/api/*', '**/cli/*']],
    ['src/api/**/*.ts', ['**/cli/*']],
  ].map(([files, patterns]) => ({ files: [files], rules: { 'no-restricted-imports': ['error', { patterns }] } })),
);
