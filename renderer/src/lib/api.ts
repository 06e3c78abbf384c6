/**
 * The renderer's one way to the main side: Electron's preload `window.api`, or the HTTP client
 * of the browser fallback. Both implement MaskloopApi from the shared contract, so screens
 * never know which shell they run in.
 */
import {
  ApiCallError,
  createHttpApi,
  decodeMaskBlock,
  decodePixelBlock,
  type Channel,
  type ChannelRequest,
  type ChannelResponse,
  type MaskBlock,
  type MaskloopApi,
  type PixelBlock,
} from '../../../src/shared';

declare global {
  interface Window {
    api?: MaskloopApi;
  }
}

export const api: MaskloopApi = window.api ?? createHttpApi();

/** Calls a channel and throws ApiCallError (with its kind) when the answer is an error. */
export async function call<C extends Channel>(channel: C, request: ChannelRequest<C>): Promise<ChannelResponse<C>> {
  const result = await api.invoke(channel, request);
  if (!result.ok) throw new ApiCallError(result.error);
  return result.value;
}

async function getBinary(url: string): Promise<Response | null> {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (response.status === 404) return null;
  if (!response.ok) throw new ApiCallError({ kind: response.status === 400 ? 'argument' : 'data', message: `${url}: HTTP ${response.status} ${await response.text()}` });
  return response;
}

export async function fetchPixels(url: string): Promise<PixelBlock> {
  const response = await getBinary(url);
  if (!response) throw new ApiCallError({ kind: 'data', message: `${url}: no pixels` });
  return decodePixelBlock(response.headers, await response.arrayBuffer());
}

/** A label or proposal mask; null when there is none. */
export async function fetchMask(url: string): Promise<MaskBlock | null> {
  const response = await getBinary(url);
  return response ? decodeMaskBlock(response.headers, await response.arrayBuffer()) : null;
}

export function errorMessage(error: unknown): string {
  if (error instanceof ApiCallError) return `${error.kind} error: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
