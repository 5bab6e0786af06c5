// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ (docs/architecture.md, "Layers"): each imports only from the layers below it.
 *   leaf modules (errors, clock, logger, redaction, json-limits)
 *   definition/ → runtime/ → engine/ → adapters (saga-log, participants, extproc, admin, cli, config, app, main)
 */
const ADAPTERS = ['saga-log', 'participants', 'extproc', 'admin', 'cli', 'config', 'app', 'main'];
const LAYERS = ['definition', 'runtime', 'engine'];
/** A no-restricted-imports block forbidding, for `files`, imports of the directories `above` (relative to `from`). */
const layerRule = (files, from, above) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            group: above.flatMap((d) => [`${from}${d}`, `${from}${d}/*`]),
            message: 'a layer imports only from the layers below it (docs/architecture.md, "Layers")',
          },
        ],
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.venv/', 'coverage/', '**/*.js', '**/*.mjs'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      'no-console': 'error',
    },
  },
  {
    files: ['test/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts'],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  layerRule(['src/definition/**/*.ts'], '../', [...LAYERS.slice(1), ...ADAPTERS]),
  layerRule(['src/runtime/**/*.ts'], '../', [...LAYERS.slice(2), ...ADAPTERS]),
  layerRule(['src/engine/**/*.ts'], '../', ADAPTERS),
  layerRule(
    ['src/errors.ts', 'src/clock.ts', 'src/logger.ts', 'src/redaction.ts', 'src/json-limits.ts'],
    './',
    [...LAYERS, ...ADAPTERS],
  ),
);
