// Entry of the app's pixel worker thread: runs the TypeScript sources through tsx's loader, as the
// job process and the `maskloop` command line do.
import { register } from 'tsx/esm/api';

register();
await import('./pixelWorkerThread.ts');
