// Runs before each test file, in its own process: its cache folder, shared with the processes it starts (see global-setup.ts).
import path from 'node:path';

const root = process.env.MASKLOOP_TEST_CACHE_ROOT;
if (root) process.env.MASKLOOP_CACHE_DIR = path.join(root, String(process.pid));
