/**
 * The browser fallback's checks on every request: loopback Host, session token, same-origin
 * POSTs. The headers every response carries are src/app/headers.ts (Electron's too).
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { REQUEST_HEADER } from '../shared/http';

/**
 * Cookies are shared by every port of a host, so each server names its session cookie after its
 * port: a second server's login must not sign the first one's page out.
 */
const sessionCookieName = (port: number): string => `maskloop_session_${port}`;

export function tokenMatches(expected: string, given: string | null | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return null;
}

/** The session token from the Authorization header or the session cookie. */
export function requestToken(req: IncomingMessage, port: number): string | null {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice('Bearer '.length).trim();
  return cookie(req, sessionCookieName(port));
}

/**
 * Only the names this server is reached by on loopback: a DNS-rebinding page (evil.example
 * resolving to 127.0.0.1) sends its own name as Host and is refused.
 */
export function hostAllowed(req: IncomingMessage, port: number): boolean {
  const host = (req.headers.host ?? '').toLowerCase();
  return host === `127.0.0.1:${port}` || host === `localhost:${port}` || host === `[::1]:${port}`;
}

/** A state-changing call must come from the app's own page (or a non-browser client, which sends no Origin). */
export function postAllowed(req: IncomingMessage, port: number): string | null {
  if (req.headers[REQUEST_HEADER] !== '1') return `missing ${REQUEST_HEADER} header`;
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return 'content-type must be application/json';
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://127.0.0.1:${port}` && origin !== `http://localhost:${port}` && origin !== `http://[::1]:${port}`) {
    return `cross-origin request from ${origin} refused`;
  }
  return null;
}

export function sessionCookie(token: string, port: number): string {
  return `${sessionCookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`;
}
