import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import isthmus from './scripts/lint/layers.js';

export default tseslint.config(
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // Layers of src/ (docs/ARCHITECTURE.md): a wrong-way import or an import cycle fails the build.
    files: ['src/**/*.ts'],
    plugins: { isthmus },
    rules: { 'isthmus/layers': 'error', 'isthmus/no-cycle': 'error' },
  },
);
