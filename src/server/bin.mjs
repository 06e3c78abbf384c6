#!/usr/bin/env node
// The browser fallback server: runs the TypeScript sources through tsx's loader (as the CLI does).
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
