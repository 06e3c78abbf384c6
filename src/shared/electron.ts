/**
 * Electron IPC names: one invoke channel per contract channel, one event channel. Kept apart
 * from ipc.ts so the preload bundle does not carry zod.
 */
export const ELECTRON_EVENT_CHANNEL = 'maskloop:event';
export const electronChannel = (channel: string): string => `maskloop:${channel}`;
