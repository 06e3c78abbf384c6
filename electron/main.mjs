// Electron's main entry ("main" in package.json). The app:// scheme must be registered as
// privileged before the app is ready, so that happens here, synchronously, before the
// TypeScript main (run through tsx's loader, like the CLI and the job process) is imported.
import { app, protocol } from 'electron';
import { register } from 'tsx/esm/api';

protocol.registerSchemesAsPrivileged([
  // standard + secure: a real origin (app://maskloop) with https-like rules; supportFetchAPI:
  // the renderer fetches pixels from it; stream: large pixel bodies are not buffered twice.
  { scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true, stream: true, codeCache: true } },
]);

register();
const { startDesktopApp } = await import('./main.ts');
await app.whenReady();
await startDesktopApp();
