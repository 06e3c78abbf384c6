/**
 * The built renderer's files, for the browser fallback server and Electron's app:// protocol
 * alike: resolved inside the renderer folder only (no traversal), with a MIME type, and
 * index.html for client-side routes.
 */
import fs from 'node:fs';
import path from 'node:path';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.map': 'application/json',
};

export interface StaticAnswer {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array | string;
}

/** The file a URL path names inside `rendererDir`, or null when it would lie outside it. */
export function resolveInside(rendererDir: string, pathname: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const root = path.resolve(rendererDir);
  const file = path.resolve(root, '.' + (decoded === '/' ? '/index.html' : decoded));
  return file.startsWith(root + path.sep) ? file : null;
}

export function rendererFile(rendererDir: string, pathname: string): StaticAnswer {
  const text = (status: number, message: string): StaticAnswer => ({ status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: message });
  const file = resolveInside(rendererDir, pathname);
  if (!file) return text(404, 'not found');
  const index = path.join(path.resolve(rendererDir), 'index.html');
  const target = fs.existsSync(file) && fs.statSync(file).isFile() ? file : path.extname(file) === '' ? index : null;
  if (!target || !fs.existsSync(target)) {
    return fs.existsSync(index) ? text(404, 'not found') : text(503, `the renderer is not built (${index} is missing): run npm run build:renderer`);
  }
  const type = MIME[path.extname(target).toLowerCase()] ?? 'application/octet-stream';
  return { status: 200, headers: { 'content-type': type, 'cache-control': target === index ? 'no-store' : 'no-cache' }, body: fs.readFileSync(target) };
}
