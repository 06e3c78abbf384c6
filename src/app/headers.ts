/**
 * The security baseline of every response that serves the renderer, in the browser fallback and
 * in Electron's app:// protocol alike.
 *
 * CSP for the renderer: only its own scripts; 'wasm-unsafe-eval' for tfjs' WebAssembly backend;
 * blob: workers for its threads; inline styles because Svelte sets style attributes.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "worker-src 'self' blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join('; ');

/** On every response: cross-origin isolation (COOP + COEP) lets the renderer use threaded WebAssembly (SharedArrayBuffer). */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
