/**
 * Electron main process: thin wiring (DESIGN.md layout). Windows are hardened (context
 * isolation, sandbox, no Node, CSP, navigation and window.open denied, no webviews, no
 * permissions); the UI and its pixel endpoints come from the app:// protocol; every IPC channel
 * of the contract is registered from CHANNELS and validated by the AppService before a handler
 * runs; training and inference run in a utilityProcess.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { handleBinaryRoute, isBinaryRoute } from '../src/app/binaryRoutes';
import { AppService } from '../src/app/service';
import { JOB_PROCESS_ENTRY, type JobProcessHandle } from '../src/jobs/runner';
import { SECURITY_HEADERS } from '../src/app/headers';
import { rendererFile } from '../src/app/rendererFiles';
import { CHANNEL_NAMES, ELECTRON_EVENT_CHANNEL, electronChannel } from '../src/shared/ipc';
import { failure } from '../src/shared/result';
import type { BrowserWindow, MainElectron, WebContents } from './electronApi';

const electron = createRequire(import.meta.url)('electron') as MainElectron;
const { app, BrowserWindow: Window, dialog, ipcMain, protocol, utilityProcess } = electron;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const RENDERER_DIR = path.join(repoRoot, 'dist', 'renderer');
const PRELOAD = path.join(repoRoot, 'dist', 'electron', 'preload.cjs');
export const APP_ORIGIN = 'app://maskloop';

/** Only the app's own pages may call the API or stay loaded. */
export function isAppUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'app:' && u.host === 'maskloop';
  } catch {
    return false;
  }
}

function utilityProcessLauncher(): JobProcessHandle {
  const child = utilityProcess.fork(JOB_PROCESS_ENTRY, [], { serviceName: 'maskloop jobs', stdio: 'inherit' });
  return {
    get pid() {
      return child.pid;
    },
    send: (message) => child.postMessage(message),
    onMessage: (listener) => child.on('message', listener),
    onExit: (listener) => child.on('exit', (code) => listener(code)),
    kill: () => void child.kill(),
  };
}

function harden(contents: WebContents): void {
  contents.on('will-navigate', (event, url) => {
    if (!isAppUrl(url)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!isAppUrl(url)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.session.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  contents.session.setPermissionCheckHandler(() => false);
}

function createWindow(): BrowserWindow {
  const window = new Window({
    width: 1400,
    height: 900,
    minWidth: 900,
    minHeight: 600,
    title: 'maskloop',
    show: false,
    backgroundColor: '#14161a',
    webPreferences: {
      preload: PRELOAD,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
      navigateOnDragDrop: false,
    },
  });
  window.once('ready-to-show', () => window.show());
  void window.loadURL(`${APP_ORIGIN}/index.html`);
  return window;
}

export async function startDesktopApp(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    // One process owns the database: a second instance hands over to the first.
    app.quit();
    return;
  }
  app.on('web-contents-created', (_event, contents) => harden(contents));

  let mainWindow: BrowserWindow | null = null;
  const service = new AppService({
    shell: 'electron',
    launcher: utilityProcessLauncher,
    stateDir: app.getPath('userData'),
    version: app.getVersion(),
    chooseFolder: async (title) => {
      if (!mainWindow) return null;
      const result = await dialog.showOpenDialog(mainWindow, { title, properties: ['openDirectory', 'createDirectory'] });
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
  });

  for (const channel of CHANNEL_NAMES) {
    ipcMain.handle(electronChannel(channel), (event, request) => {
      if (!event.senderFrame || !isAppUrl(event.senderFrame.url)) return failure('argument', 'IPC from a page that is not maskloop’s own was refused');
      return service.invoke(channel, request);
    });
  }
  service.onEvent((appEvent) => {
    for (const window of Window.getAllWindows()) if (!window.isDestroyed()) window.webContents.send(ELECTRON_EVENT_CHANNEL, appEvent);
  });

  protocol.handle('app', async (request) => {
    const url = new URL(request.url);
    if (url.host !== 'maskloop') return new Response('not found', { status: 404, headers: SECURITY_HEADERS });
    if (isBinaryRoute(url.pathname)) {
      const body = await handleBinaryRoute(service, url);
      return new Response(body.body as unknown as BodyInit, { status: body.status, headers: { ...SECURITY_HEADERS, 'cache-control': 'no-store', ...body.headers } });
    }
    const file = rendererFile(RENDERER_DIR, url.pathname);
    return new Response(file.body as unknown as BodyInit, { status: file.status, headers: { ...SECURITY_HEADERS, ...file.headers } });
  });

  app.on('second-instance', () => {
    if (mainWindow && !mainWindow.isDestroyed()) mainWindow.show();
  });
  app.on('window-all-closed', () => {
    // The pixel worker and the job process flush and close their project connections first.
    void service.close().finally(() => app.quit());
  });
  mainWindow = createWindow();
}
