import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const rendererRoot = fileURLToPath(new URL('./renderer', import.meta.url));

/**
 * The renderer is one static bundle that both shells serve: Electron from app://, the browser
 * fallback server from 127.0.0.1. base './' keeps every URL relative so either origin works;
 * no inline scripts, so the servers' CSP (script-src 'self') holds.
 */
export default defineConfig({
  root: rendererRoot,
  base: './',
  plugins: [svelte()],
  build: {
    outDir: fileURLToPath(new URL('./dist/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // Inlined assets would be data: URLs for scripts; keep everything as files.
    assetsInlineLimit: 0,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
});
