/**
 * The Winograd tiles the addon timed on this machine, kept from one process to the next.
 *
 * The addon chooses F(4x4) or F(2x2) for each kind of 3x3 convolution by timing both at the
 * kind's first call. Timings vary from run to run, so two processes could choose differently and
 * compute the same model to different last bits: training again from the same labels and seed
 * would not give the same model, and a model's val score would differ between the process that
 * trained it and one that checks it. So each choice is written to a file in the user's cache as
 * soon as it is made, and a process that loads the addon starts from the file's choices: on one
 * machine a kind keeps the tile it was first given. Where two processes time the same new kind at
 * once, the file keeps the choice written first; the other process keeps its own until it exits.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuinfoField, procCpuinfo } from './cpuinfo';

/** What of the addon (index.ts's NativeAddon) the plans need; named here so that index.ts can load them at its own load. */
interface TilePlanner {
  readonly isa: string;
  winogradPlans(): Int32Array;
  winogradPlanCount(): number;
  addWinogradPlan(ic: number, oc: number, sizeLog2: number, tile: number): boolean;
}

/** MASKLOOP_CACHE_DIR, else the platform's per-user cache folder, with a maskloop folder in it. */
export function userCacheDir(): string {
  if (process.env.MASKLOOP_CACHE_DIR) return process.env.MASKLOOP_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME
    || (process.platform === 'darwin' ? path.join(os.homedir(), 'Library', 'Caches')
      : process.platform === 'win32' ? (process.env.LOCALAPPDATA ?? os.tmpdir())
        : path.join(os.homedir(), '.cache'));
  return path.join(base, 'maskloop');
}

/** {channels in, channels out, log2 of the output's pixels, tile}, as the addon lists them. */
type Plan = [number, number, number, number];

interface PlanFile {
  cpu: string;
  isa: string;
  plans: Plan[];
}

let identity: string | undefined;

/**
 * The CPU's model name and, on Linux, its family and model numbers: cloud machines name different
 * core generations alike ('AMD EPYC' for a first Zen and a Zen 5), and the tile that wins differs
 * between them. Worked out once per process.
 */
function cpuIdentity(): string {
  if (identity !== undefined) return identity;
  const name = os.cpus()[0]?.model ?? 'unknown cpu';
  const cpuinfo = procCpuinfo();
  const family = cpuinfo === null ? undefined : cpuinfoField(cpuinfo, 'cpu family');
  const model = cpuinfo === null ? undefined : cpuinfoField(cpuinfo, 'model');
  identity = family === undefined || model === undefined ? name : `${name} (family ${family}, model ${model})`;
  return identity;
}

/**
 * One file per CPU and instruction set: a home folder shared by, or copied to, other machines
 * must not carry their choices.
 */
export function tilePlanFile(addon: TilePlanner): string {
  const id = createHash('sha256').update(`${cpuIdentity()}\n${addon.isa}`).digest('hex').slice(0, 16);
  return path.join(userCacheDir(), `winograd-tiles-${id}.json`);
}

function readPlans(file: string): Plan[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return []; // none yet, or unreadable: the addon times again and the file is rewritten
  }
  const plans = (parsed as Partial<PlanFile> | null)?.plans;
  if (!Array.isArray(plans)) return [];
  return plans.filter((p): p is Plan => Array.isArray(p) && p.length === 4 && p.every((v) => Number.isInteger(v)));
}

function listPlans(addon: TilePlanner): Plan[] {
  const flat = addon.winogradPlans();
  const plans: Plan[] = [];
  for (let i = 0; i + 3 < flat.length; i += 4) plans.push([flat[i], flat[i + 1], flat[i + 2], flat[i + 3]]);
  return plans;
}

const keyOf = (p: Plan): string => `${p[0]},${p[1]},${p[2]}`;

let warned = false;
/** The addon's plan count when this thread last wrote them (or read them in). */
let savedCount = -1;

/** Gives the addon the choices the file holds; kinds it has met already keep theirs. */
export function loadTilePlans(addon: TilePlanner, file = tilePlanFile(addon)): number {
  let added = 0;
  for (const [ic, oc, size, tile] of readPlans(file)) if (addon.addWinogradPlan(ic, oc, size, tile)) added++;
  savedCount = addon.winogradPlanCount();
  return added;
}

/**
 * Writes the addon's choices to the file when it has made new ones since the last call; the
 * file's own choices win over this process's for a kind both hold. Cheap when nothing is new,
 * so the kernels call it after every convolution. A cache that cannot be written costs only the
 * reproducibility across processes: it is said once on stderr, and the work goes on.
 */
export function saveTilePlans(addon: TilePlanner, to?: string): void {
  const count = addon.winogradPlanCount();
  if (count === savedCount) return;
  savedCount = count;
  const file = to ?? tilePlanFile(addon);
  const merged = new Map<string, Plan>();
  for (const p of [...readPlans(file), ...listPlans(addon)]) if (!merged.has(keyOf(p))) merged.set(keyOf(p), p);
  const content: PlanFile = { cpu: cpuIdentity(), isa: addon.isa, plans: [...merged.values()] };
  const temporary = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(temporary, `${JSON.stringify(content)}\n`);
    fs.renameSync(temporary, file);
  } catch (err) {
    fs.rmSync(temporary, { force: true });
    if (!warned) {
      warned = true;
      process.stderr.write(`maskloop: could not keep the timed convolution tiles in ${file} (${err instanceof Error ? err.message : String(err)}); another process may compute the same model to different last bits\n`);
    }
  }
}
