#!/usr/bin/env node
// The `maskloop` executable: runs the TypeScript command line through tsx's loader, so the CLI,
// the tests and the app share one source tree with no build step.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
