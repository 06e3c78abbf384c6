import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { BACKEND_PREFERENCE, preferenceFromEnv } from '../../src/engine/backend';

const root = new URL('../..', import.meta.url).pathname;

/** Runs initEngine in a fresh process (the choice is once per process) and returns what it reported. */
function choose(env: Record<string, string>) {
  const script = `import { initEngine, backendInfo } from './src/engine/backend.ts';
    const info = await initEngine();
    console.log(JSON.stringify({ info, same: backendInfo() === info }));`;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root, env: { ...process.env, ...env }, encoding: 'utf8',
  });
  return { status: run.status, stderr: run.stderr, result: run.status === 0 ? JSON.parse(run.stdout.trim().split('\n').pop() as string) : null };
}

describe('backend choice', () => {
  test('default order prefers a GPU (CUDA TensorFlow, then WebGPU), then native TensorFlow, the addon, wasm, cpu', () => {
    expect(preferenceFromEnv('')).toEqual([...BACKEND_PREFERENCE]);
    expect(BACKEND_PREFERENCE).toEqual(['tensorflow-gpu', 'webgpu', 'tensorflow', 'native', 'wasm', 'cpu']);
  });

  test('WebGPU is used only on a hardware adapter; otherwise it is skipped with its reason', () => {
    const { status, result } = choose({ MASKLOOP_BACKEND: 'webgpu,cpu' });
    expect(status).toBe(0);
    const [attempt] = result.info.attempts;
    expect(attempt.choice).toBe('webgpu');
    if (attempt.ok) {
      // A machine with a GPU: the adapter is named, and it is not a software rasteriser.
      expect(attempt.detail).toMatch(/^WebGPU on /);
      expect(attempt.detail).not.toMatch(/swiftshader|llvmpipe|lavapipe/i);
    } else {
      expect(attempt.detail).toMatch(/Vulkan loader|WebGPU adapter|software adapter|webgpu package/);
      expect(result.info.choice).toBe('cpu');
    }
  });

  test('MASKLOOP_BACKEND overrides, and an unknown name is an error, not a silent fallback', () => {
    expect(preferenceFromEnv('wasm, cpu')).toEqual(['wasm', 'cpu']);
    expect(() => preferenceFromEnv('cuda')).toThrow(/unknown backend 'cuda'/);
  });

  test('the choice is reported in a log line and through the API', () => {
    const { status, stderr, result } = choose({ MASKLOOP_BACKEND: 'cpu' });
    expect(status).toBe(0);
    expect(stderr).toMatch(/\[maskloop\] backend: cpu/);
    expect(result.info.choice).toBe('cpu');
    expect(result.info.tfBackend).toBe('cpu');
    expect(result.same).toBe(true);
  });

  test('an unavailable backend is skipped with its reason', () => {
    const { result } = choose({ MASKLOOP_BACKEND: 'tensorflow,wasm' });
    // On machines without libtensorflow the first attempt fails and says why.
    if (result.info.choice === 'wasm') {
      expect(result.info.attempts[0]).toMatchObject({ choice: 'tensorflow', ok: false });
      expect(result.info.attempts[0].detail.length).toBeGreaterThan(0);
    } else {
      expect(result.info.choice).toBe('tensorflow');
    }
    expect(result.info.attempts.at(-1).ok).toBe(true);
  });

  test.skipIf(process.env.MASKLOOP_SKIP_NATIVE === '1')('on a machine where the addon builds, the default choice is native with every core', () => {
    const { result } = choose({ MASKLOOP_BACKEND: '' });
    if (result.info.choice.startsWith('tensorflow')) return; // a faster native TensorFlow won
    expect(result.info.choice).toBe('native');
    const cores = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
    expect(result.info.threads).toBe(cores);
  });
});
