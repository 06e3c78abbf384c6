/**
 * The browser fallback's side of the contract: how the renderer (or a test) calls the local
 * server. One POST per call to /api/invoke/<channel> with the wire-encoded request as JSON; the
 * answer is the wire-encoded Result. Events arrive as server-sent events on /api/events.
 *
 * Authentication: the server prints http://127.0.0.1:<port>/?token=<token>; opening it sets an
 * HttpOnly, SameSite=Strict session cookie and redirects to '/', so a page of the app needs no
 * token of its own. Other clients (tests, scripts) send `Authorization: Bearer <token>`.
 */
import { failure, type Result } from './result';
import type { Channel, ChannelRequest, ChannelResponse, MaskloopApi } from './ipc';
import type { AppEvent } from './types';
import { fromWire, toWire } from './wire';

export const API_PREFIX = '/api';
export const invokePath = (channel: Channel): string => `${API_PREFIX}/invoke/${channel}`;
export const EVENTS_PATH = `${API_PREFIX}/events`;
/** Required on every POST: a cross-site form cannot set it, and a cross-site fetch that sets it needs a CORS preflight the server never grants. */
export const REQUEST_HEADER = 'x-maskloop-request';

export interface HttpApiOptions {
  /** Origin of the server; '' (default) for the page's own origin. */
  baseUrl?: string;
  /** For clients without the session cookie. */
  token?: string;
  fetch?: typeof fetch;
}

export function createHttpApi(options: HttpApiOptions = {}): MaskloopApi {
  const base = options.baseUrl ?? '';
  const doFetch = options.fetch ?? fetch.bind(globalThis);
  const auth: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  return {
    shell: 'browser',
    async invoke<C extends Channel>(channel: C, request: ChannelRequest<C>): Promise<Result<ChannelResponse<C>>> {
      let response: Response;
      try {
        response = await doFetch(`${base}${invokePath(channel)}`, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json', [REQUEST_HEADER]: '1', ...auth },
          body: JSON.stringify(toWire(request ?? {})),
        });
      } catch (error) {
        return failure('db', `the maskloop server did not answer: ${(error as Error).message}`);
      }
      const text = await response.text();
      try {
        return fromWire(JSON.parse(text)) as Result<ChannelResponse<C>>;
      } catch {
        return failure('argument', `HTTP ${response.status}: ${text.slice(0, 200)}`);
      }
    },
    onEvent(listener: (event: AppEvent) => void): () => void {
      // EventSource sends the session cookie; it cannot send an Authorization header.
      const source = new EventSource(`${base}${EVENTS_PATH}`, { withCredentials: true });
      const handle = (message: MessageEvent) => listener(fromWire(JSON.parse(message.data as string)) as AppEvent);
      source.addEventListener('message', handle);
      return () => {
        source.removeEventListener('message', handle);
        source.close();
      };
    },
  };
}
