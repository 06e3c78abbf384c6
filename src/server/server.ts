/**
 * The browser fallback: the app's typed API over HTTP on 127.0.0.1, for machines where Electron
 * cannot run. Same channels, same zod validation (AppService.invoke), server-sent events for
 * progress, raw pixel/mask endpoints, and the built renderer with CSP and COOP/COEP headers.
 * Every request needs the per-session token (cookie or bearer) and a loopback Host.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { handleBinaryRoute, isBinaryRoute } from '../app/binaryRoutes';
import { AppService } from '../app/service';
import { nodeJobProcessLauncher, type JobProcessLauncher } from '../jobs/runner';
import { EVENTS_PATH, API_PREFIX } from '../shared/http';
import { isChannel } from '../shared/ipc';
import { failure, type ErrorKind, type Result } from '../shared/result';
import { fromWire, toWire } from '../shared/wire';
import { rendererFile } from '../app/rendererFiles';
import { SECURITY_HEADERS } from '../app/headers';
import { hostAllowed, postAllowed, requestToken, sessionCookie, tokenMatches } from './security';

export interface ServerOptions {
  /** 0 (default): a free port chosen by the system. */
  port?: number;
  /** The built renderer (vite's output). */
  rendererDir: string;
  /** App state (recent projects); default ~/.config/maskloop. */
  stateDir?: string;
  /** Open this project at start. */
  projectDir?: string;
  /** Default: 32 random bytes, hex. */
  token?: string;
  launcher?: JobProcessLauncher;
  version?: string;
  autoTrainSteps?: number;
}

export interface RunningServer {
  url: string;
  origin: string;
  port: number;
  token: string;
  service: AppService;
  close(): Promise<void>;
}

/**
 * Largest JSON request accepted, from the largest image of the open project: the biggest real
 * request is a whole label of it (int32 object ids and the uint8 unknown flags, 5 bytes a pixel,
 * base64 adds a third), plus room for the rest of the request. Anything larger is refused with 413
 * as soon as its Content-Length says so, before a byte of it is buffered.
 */
export function maxRequestBytes(largestImagePixels: number): number {
  return Math.ceil((largestImagePixels * 5 * 4) / 3) + REQUEST_SLACK;
}

/** Room for the rest of a request: anything this small is accepted without asking the project. */
const REQUEST_SLACK = 16 * 1024 * 1024;

class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes (a whole label of this project's largest image is smaller)`);
  }
}
const STATUS_FOR: Record<ErrorKind, number> = { argument: 400, data: 422, db: 503, engine: 500, cancelled: 409 };

export function defaultStateDir(): string {
  const base = process.env.XDG_CONFIG_HOME || (process.platform === 'darwin' ? path.join(os.homedir(), 'Library', 'Application Support') : process.platform === 'win32' ? (process.env.APPDATA ?? os.homedir()) : path.join(os.homedir(), '.config'));
  return path.join(base, 'maskloop');
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string | Uint8Array): void {
  res.writeHead(status, { ...SECURITY_HEADERS, ...headers });
  res.end(body);
}

function sendResult(res: ServerResponse, result: Result<unknown>): void {
  const status = result.ok ? 200 : STATUS_FOR[result.error.kind];
  send(res, status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }, JSON.stringify(toWire(result)));
}

/** The body, refused past `limitOf()`, which is asked only for a body larger than REQUEST_SLACK (a stroke never is). */
async function readBody(req: IncomingMessage, limitOf: () => number): Promise<string> {
  let limit: number | null = null;
  const refuseBeyondLimit = (size: number) => {
    if (size <= REQUEST_SLACK) return;
    limit ??= limitOf();
    if (size > limit) throw new BodyTooLarge(limit);
  };
  refuseBeyondLimit(Number(req.headers['content-length']) || 0);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    refuseBeyondLimit(size);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const token = options.token ?? randomBytes(32).toString('hex');
  const service = new AppService({
    shell: 'browser',
    launcher: options.launcher ?? nodeJobProcessLauncher(),
    stateDir: options.stateDir ?? defaultStateDir(),
    version: options.version,
    autoTrainSteps: options.autoTrainSteps,
  });
  if (options.projectDir) {
    const opened = await service.invoke('project:open', { dir: path.resolve(options.projectDir) });
    if (!opened.ok) {
      await service.close();
      throw new Error(`cannot open ${options.projectDir}: ${opened.error.message}`);
    }
  }
  const streams = new Set<ServerResponse>();
  const unsubscribe = service.onEvent((event) => {
    const data = `data: ${JSON.stringify(toWire(event))}\n\n`;
    for (const res of streams) res.write(data);
  });
  let port = 0;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { 'content-type': 'text/plain; charset=utf-8' }, `internal error: ${(error as Error).message}`);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!hostAllowed(req, port)) return send(res, 421, { 'content-type': 'text/plain; charset=utf-8' }, 'wrong Host: this server answers only to 127.0.0.1 or localhost');
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    // Opening the printed URL trades the token in the query for a session cookie, then drops it from the address bar.
    const queryToken = url.searchParams.get('token');
    if (queryToken !== null && req.method === 'GET' && !url.pathname.startsWith(API_PREFIX)) {
      if (!tokenMatches(token, queryToken)) return send(res, 401, { 'content-type': 'text/plain; charset=utf-8' }, 'wrong token');
      url.searchParams.delete('token');
      return send(res, 302, { location: url.pathname + url.search, 'set-cookie': sessionCookie(token, port), 'cache-control': 'no-store' }, '');
    }
    if (!tokenMatches(token, requestToken(req, port))) {
      if (url.pathname.startsWith(API_PREFIX)) return send(res, 401, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(failure('argument', 'not authorised: this session needs its token')));
      return send(res, 401, { 'content-type': 'text/plain; charset=utf-8' }, 'maskloop: open the URL with ?token=… that `npm start` printed');
    }

    if (url.pathname.startsWith(`${API_PREFIX}/invoke/`)) {
      if (req.method !== 'POST') return send(res, 405, { allow: 'POST' }, '');
      const refused = postAllowed(req, port);
      if (refused) return send(res, 403, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(failure('argument', refused)));
      const channel = url.pathname.slice(`${API_PREFIX}/invoke/`.length);
      if (!isChannel(channel)) return sendResult(res, failure('argument', `unknown channel '${channel}'`));
      let request: unknown;
      try {
        request = fromWire(JSON.parse(await readBody(req, () => maxRequestBytes(service.largestImagePixels()))));
      } catch (error) {
        if (error instanceof BodyTooLarge) {
          // The rest of the body is not read: close the connection rather than drain it.
          return send(res, 413, { 'content-type': 'application/json; charset=utf-8', connection: 'close' }, JSON.stringify(failure('argument', error.message)));
        }
        return sendResult(res, failure('argument', `request body is not valid JSON: ${(error as Error).message}`));
      }
      return sendResult(res, await service.invoke(channel, request));
    }
    if (url.pathname === EVENTS_PATH) {
      if (req.method !== 'GET') return send(res, 405, { allow: 'GET' }, '');
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': maskloop events\n\n');
      streams.add(res);
      const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      req.on('close', () => {
        clearInterval(keepAlive);
        streams.delete(res);
      });
      return;
    }
    if (isBinaryRoute(url.pathname)) {
      if (req.method !== 'GET') return send(res, 405, { allow: 'GET' }, '');
      const body = await handleBinaryRoute(service, url);
      return send(res, body.status, { 'cache-control': 'no-store', ...body.headers }, body.body);
    }
    if (url.pathname.startsWith(API_PREFIX)) return send(res, 404, { 'content-type': 'text/plain; charset=utf-8' }, 'no such endpoint');

    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { allow: 'GET, HEAD' }, '');
    const file = rendererFile(options.rendererDir, url.pathname);
    return send(res, file.status, file.headers, file.body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Loopback only: nothing on the network can reach the API, token or not.
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as { port: number }).port;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/?token=${token}`,
    origin,
    port,
    token,
    service,
    close: async () => {
      unsubscribe();
      for (const res of streams) res.end();
      streams.clear();
      await service.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
