/**
 * The part of Electron's API that maskloop uses, as types of our own. Electron's binary (and with
 * it, on some machines, its package and type definitions) cannot be installed everywhere this
 * code is developed, so main and preload obtain the module with require('electron') and type it
 * against this subset: `tsc` checks every use, with or without the electron package present.
 * Names and signatures follow Electron 38's documentation.
 */

export interface WebPreferences {
  preload?: string;
  contextIsolation?: boolean;
  sandbox?: boolean;
  nodeIntegration?: boolean;
  nodeIntegrationInWorker?: boolean;
  webSecurity?: boolean;
  allowRunningInsecureContent?: boolean;
  webviewTag?: boolean;
  spellcheck?: boolean;
  navigateOnDragDrop?: boolean;
}

export interface BrowserWindowOptions {
  width?: number;
  height?: number;
  minWidth?: number;
  minHeight?: number;
  title?: string;
  show?: boolean;
  backgroundColor?: string;
  webPreferences?: WebPreferences;
}

export interface ElectronEvent {
  preventDefault(): void;
}

export interface Session {
  setPermissionRequestHandler(handler: ((webContents: WebContents, permission: string, callback: (granted: boolean) => void) => void) | null): void;
  setPermissionCheckHandler(handler: ((webContents: WebContents | null, permission: string) => boolean) | null): void;
}

export interface WebContents {
  readonly id: number;
  readonly session: Session;
  send(channel: string, ...args: unknown[]): void;
  getURL(): string;
  isDestroyed(): boolean;
  on(event: 'will-navigate' | 'will-redirect', listener: (event: ElectronEvent, url: string) => void): this;
  on(event: 'will-attach-webview', listener: (event: ElectronEvent) => void): this;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' } | { action: 'allow' }): void;
}

export interface BrowserWindow {
  readonly webContents: WebContents;
  loadURL(url: string): Promise<void>;
  once(event: 'ready-to-show', listener: () => void): this;
  show(): void;
  isDestroyed(): boolean;
}

export interface BrowserWindowConstructor {
  new (options: BrowserWindowOptions): BrowserWindow;
  getAllWindows(): BrowserWindow[];
}

export interface IpcMainInvokeEvent {
  readonly sender: WebContents;
  readonly senderFrame: { readonly url: string } | null;
}

export interface IpcMain {
  handle(channel: string, listener: (event: IpcMainInvokeEvent, ...args: unknown[]) => unknown): void;
}

export interface CustomScheme {
  scheme: string;
  privileges?: { standard?: boolean; secure?: boolean; supportFetchAPI?: boolean; corsEnabled?: boolean; stream?: boolean; codeCache?: boolean };
}

export interface Protocol {
  registerSchemesAsPrivileged(schemes: CustomScheme[]): void;
  handle(scheme: string, handler: (request: Request) => Response | Promise<Response>): void;
}

export interface OpenDialogReturnValue {
  canceled: boolean;
  filePaths: string[];
}

export interface Dialog {
  showOpenDialog(window: BrowserWindow, options: { title?: string; properties: ('openDirectory' | 'createDirectory')[] }): Promise<OpenDialogReturnValue>;
  showErrorBox(title: string, content: string): void;
}

export interface UtilityProcess {
  readonly pid: number | undefined;
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): this;
  on(event: 'exit', listener: (code: number) => void): this;
  kill(): boolean;
}

export interface UtilityProcessModule {
  fork(modulePath: string, args?: string[], options?: { serviceName?: string; stdio?: 'inherit' | 'ignore' | 'pipe'; env?: NodeJS.ProcessEnv }): UtilityProcess;
}

export interface App {
  whenReady(): Promise<void>;
  quit(): void;
  getVersion(): string;
  getPath(name: 'userData' | 'home'): string;
  requestSingleInstanceLock(): boolean;
  on(event: 'window-all-closed' | 'before-quit', listener: () => void): this;
  on(event: 'second-instance', listener: () => void): this;
  on(event: 'web-contents-created', listener: (event: ElectronEvent, contents: WebContents) => void): this;
}

export interface MainElectron {
  app: App;
  BrowserWindow: BrowserWindowConstructor;
  ipcMain: IpcMain;
  protocol: Protocol;
  dialog: Dialog;
  utilityProcess: UtilityProcessModule;
}

export interface IpcRendererEvent {
  readonly sender: unknown;
}

export interface PreloadElectron {
  contextBridge: { exposeInMainWorld(key: string, api: unknown): void };
  ipcRenderer: {
    invoke(channel: string, ...args: unknown[]): Promise<unknown>;
    on(channel: string, listener: (event: IpcRendererEvent, ...args: unknown[]) => void): unknown;
    removeListener(channel: string, listener: (event: IpcRendererEvent, ...args: unknown[]) => void): unknown;
  };
}
