/**
 * The preload: builds `window.api` (the contract's MaskloopApi) from the channel list, so the
 * renderer gets exactly the contract's calls and nothing of Node or Electron. Bundled to
 * dist/electron/preload.cjs (sandboxed preloads cannot load other files) by build/build-electron.mjs.
 */
import { ELECTRON_EVENT_CHANNEL, electronChannel } from '../src/shared/electron';
import type { MaskloopApi } from '../src/shared/ipc';
import { failure } from '../src/shared/result';
import type { AppEvent } from '../src/shared/types';
import type { IpcRendererEvent, PreloadElectron } from './electronApi';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- a sandboxed preload is CommonJS and may require only 'electron'
const { contextBridge, ipcRenderer } = require('electron') as PreloadElectron;

const api: MaskloopApi = {
  shell: 'electron',
  // Main has a handler for every contract channel (and validates the request); any other name
  // has none, and the rejection becomes an argument error like every other refusal.
  invoke: (channel, request) =>
    ipcRenderer.invoke(electronChannel(channel), request).catch(() => failure('argument', `unknown channel '${String(channel)}'`)) as never,
  onEvent(listener) {
    const forward = (_event: IpcRendererEvent, appEvent: unknown) => listener(appEvent as AppEvent);
    ipcRenderer.on(ELECTRON_EVENT_CHANNEL, forward);
    return () => void ipcRenderer.removeListener(ELECTRON_EVENT_CHANNEL, forward);
  },
};

contextBridge.exposeInMainWorld('api', api);
