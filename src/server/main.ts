/**
 * `node src/server/bin.mjs [--port n] [--project dir] [--renderer dir] [--state dir] [--json]`:
 * starts the browser fallback and prints the URL to open (with the session token). With --json
 * it prints one JSON line instead, for tests and scripts. SIGINT/SIGTERM stop it cleanly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startServer } from './server';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.MASKLOOP_PORT ?? '0' },
    project: { type: 'string' },
    renderer: { type: 'string', default: path.join(repoRoot, 'dist', 'renderer') },
    state: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (values.help) {
  console.log('usage: maskloop-server [--port n] [--project <dir>] [--renderer <dir>] [--state <dir>] [--json]');
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`maskloop: --port must be 0..65535, got '${values.port}'`);
  process.exit(2);
}
const autoTrainSteps = process.env.MASKLOOP_AUTO_TRAIN_STEPS ? Number(process.env.MASKLOOP_AUTO_TRAIN_STEPS) : undefined;
const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

const server = await startServer({
  port, rendererDir: path.resolve(values.renderer), stateDir: values.state ? path.resolve(values.state) : undefined,
  projectDir: values.project ? path.resolve(values.project) : undefined, autoTrainSteps, version,
});
if (values.json) {
  console.log(JSON.stringify({ event: 'listening', url: server.url, origin: server.origin, port: server.port, token: server.token }));
} else {
  console.log(`maskloop is running in your browser at:\n\n  ${server.url}\n\n(only this machine can reach it; the link holds this session's key — Ctrl-C stops it)`);
}

let stopping = false;
const stop = () => {
  if (stopping) process.exit(130);
  stopping = true;
  void server.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
