/**
 * Starts the real browser-fallback server (src/server/bin.mjs) as a child process, and talks to
 * it as the renderer does: typed calls through createHttpApi, events from the SSE stream.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createHttpApi, EVENTS_PATH, fromWire, unwrap, type AppEvent, type Channel, type ChannelRequest, type ChannelResponse, type JobInfo, type MaskloopApi } from '../../src/shared';

export const REPO = path.resolve(new URL('../..', import.meta.url).pathname);
export const DATA = process.env.MASKLOOP_DATA ?? path.resolve(REPO, '..', 'shared', 'data');

export interface ServerProcess {
  child: ChildProcess;
  origin: string;
  url: string;
  token: string;
  port: number;
  api: MaskloopApi;
  events: AppEvent[];
  call<C extends Channel>(channel: C, request: ChannelRequest<C>): Promise<ChannelResponse<C>>;
  waitForEvent(predicate: (e: AppEvent) => boolean, timeoutMs?: number): Promise<AppEvent>;
  waitForJob(jobId: number, predicate?: (job: JobInfo) => boolean, timeoutMs?: number): Promise<JobInfo>;
  /** SIGKILL the server and its job process (its process group), as a crash or power cut would. */
  killHard(): void;
  stop(): Promise<void>;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A stand-in renderer folder: the server tests check serving, not the UI. */
export function fakeRenderer(): string {
  const dir = tempDir('maskloop-renderer-');
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>maskloop</title><script type="module" src="./app.js"></script>');
  fs.writeFileSync(path.join(dir, 'app.js'), 'console.log("maskloop");');
  return dir;
}

export async function startServerProcess(options: { state: string; renderer: string; project?: string; env?: NodeJS.ProcessEnv }): Promise<ServerProcess> {
  const args = [path.join(REPO, 'src', 'server', 'bin.mjs'), '--port', '0', '--json', '--state', options.state, '--renderer', options.renderer];
  if (options.project) args.push('--project', options.project);
  // Own process group, so a test can kill the server together with its job process.
  const child = spawn(process.execPath, args, { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${stderr}`)));
  });
  const info = JSON.parse(line) as { origin: string; url: string; token: string; port: number };
  const api = createHttpApi({ baseUrl: info.origin, token: info.token });
  const events: AppEvent[] = [];
  const waiters = new Set<() => void>();
  const stream = http.get(`${info.origin}${EVENTS_PATH}`, { headers: { authorization: `Bearer ${info.token}` } }, (res) => {
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const l of block.split('\n')) if (l.startsWith('data: ')) events.push(fromWire(JSON.parse(l.slice(6))) as AppEvent);
        for (const w of waiters) w();
      }
    });
  });
  stream.on('error', () => {});
  const waitForEvent = (predicate: (e: AppEvent) => boolean, timeoutMs = 120_000) =>
    new Promise<AppEvent>((resolve, reject) => {
      let index = 0;
      const check = () => {
        for (; index < events.length; index++) {
          if (predicate(events[index])) {
            waiters.delete(check);
            clearTimeout(timer);
            return resolve(events[index]);
          }
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching event within ${timeoutMs} ms; last: ${JSON.stringify(events.slice(-3))}\n${stderr.slice(-2000)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const finished = (j: JobInfo) => j.state === 'completed' || j.state === 'failed' || j.state === 'cancelled';
  return {
    child, api, events, ...info,
    call: async (channel, request) => unwrap(await api.invoke(channel, request)),
    waitForEvent,
    waitForJob: async (jobId, predicate = finished, timeoutMs) =>
      ((await waitForEvent((e) => e.type === 'job' && e.job.jobId === jobId && predicate(e.job), timeoutMs)) as Extract<AppEvent, { type: 'job' }>).job,
    killHard: () => {
      stream.destroy();
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    },
    stop: async () => {
      stream.destroy();
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
