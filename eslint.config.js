import svelte from 'eslint-plugin-svelte';
import svelteParser from 'svelte-eslint-parser';
import tseslint from 'typescript-eslint';

// Import boundaries (DESIGN.md, convention 1), enforced here so a crossed layer fails `npm run
// lint` (and test/unit/lint-boundaries.test.ts), not a code review. Inside src/ the layers point
// one way: shared at the bottom; imaging and store on their own; engine over imaging; eval (the
// experiment harness) over engine; jobs over engine, imaging and store; app over jobs; cli and
// server over app and jobs, cli also over eval. No layer imports one above it, and none imports
// electron/, renderer/ or tools/. electron/ is a shell over src/app. renderer/ (TypeScript and
// Svelte alike) imports only src/shared. tools/ (benchmarks, developer scripts) may use any of src/.

const LAYERS = {
  shared: [],
  imaging: ['shared'],
  store: ['shared'],
  engine: ['shared', 'imaging'],
  eval: ['shared', 'imaging', 'engine'],
  jobs: ['shared', 'imaging', 'store', 'engine'],
  app: ['shared', 'imaging', 'store', 'engine', 'jobs'],
  cli: ['shared', 'imaging', 'store', 'engine', 'eval', 'jobs', 'app'],
  server: ['shared', 'imaging', 'store', 'engine', 'jobs', 'app'],
};
const ALL = Object.keys(LAYERS);

const outsideSrc = [
  { group: ['**/electron/**', '**/renderer/**', '**/tools/**'], message: 'src/ never depends on electron/, renderer/ or tools/ (the product ships without them).' },
];

function layerRules(layer) {
  const forbidden = ALL.filter((other) => other !== layer && !LAYERS[layer].includes(other));
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'electron', message: 'src/ is plain Node and browser code: it never imports electron.' }],
        patterns: [
          ...outsideSrc,
          ...(forbidden.length
            ? [{ group: forbidden.flatMap((other) => [`../${other}`, `../${other}/**`, `../../${other}`, `../../${other}/**`]), message: `src/${layer} may import only ${['itself', ...LAYERS[layer].map((l) => `src/${l}`)].join(', ')}.` }]
            : []),
        ],
      }],
    },
  };
}

const rendererImports = ['error', {
  patterns: [{
    group: ['**/src/*', '!**/src/shared', '!**/src/shared/**', 'electron', 'node:*'],
    message: 'renderer/ may import only src/shared.',
  }],
}];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'out/**', 'tmp/**', 'src/engine/native/build/**', 'test/e2e/artifacts/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...ALL.map(layerRules),
  {
    // The Electron shell is thin over src/app, like the server: it uses neither the server nor the CLI.
    files: ['electron/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/src/server', '**/src/server/**', '**/src/cli', '**/src/cli/**', '**/renderer/**'], message: 'electron/ is a shell over src/app: it imports neither src/server, src/cli nor renderer/.' }],
      }],
    },
  },
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.svelte.ts'],
    rules: { 'no-restricted-imports': rendererImports },
  },
  // Svelte components: parsed with their TypeScript, held to the renderer's import rule.
  ...svelte.configs['flat/base'],
  {
    files: ['renderer/**/*.svelte', 'renderer/**/*.svelte.ts'],
    languageOptions: { parser: svelteParser, parserOptions: { parser: tseslint.parser } },
    rules: { 'no-restricted-imports': rendererImports },
  },
);
