/** What the renderer may import (DESIGN.md convention 1): the IPC contract, its types and codecs. */
export * from './result';
export * from './types';
export * from './ipc';
export * from './wire';
export * from './binary';
export * from './http';
export * from './training';
export * from './target';
