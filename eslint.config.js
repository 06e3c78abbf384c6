import tseslint from 'typescript-eslint';

// Import boundaries (DESIGN.md, convention 1): src/ never imports electron; renderer/ imports
// only src/shared. Enforced here so a violation fails `npm run lint`, not a code review.
export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'out/**', 'tmp/**', 'src/engine/native/build/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'electron', message: 'src/ is plain Node and browser code: it never imports electron.' }],
        patterns: [{ group: ['**/electron/**', '**/renderer/**'], message: 'src/ never depends on electron/ or renderer/.' }],
      }],
    },
  },
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.svelte.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{
          group: ['**/src/*', '!**/src/shared', '!**/src/shared/**', 'electron', 'node:*'],
          message: 'renderer/ may import only src/shared.',
        }],
      }],
    },
  },
);
