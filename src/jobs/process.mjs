// Entry of the job process (a Node child process, or an Electron utilityProcess): runs the
// TypeScript sources through tsx's loader, as the `maskloop` command line does.
import { register } from 'tsx/esm/api';

register();
await import('./process.ts');
