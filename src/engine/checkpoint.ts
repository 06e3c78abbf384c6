/**
 * Checkpoints: one file holding a JSON header and raw little-endian tensor data.
 *
 * One file (not a folder) so that saving is atomic: it is written beside its final name and
 * renamed into place, so a crash mid-save leaves the previous checkpoint intact.
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';

const MAGIC = 'MLCKPT01';

type StoredDtype = 'float32' | 'int32';

interface TensorEntry {
  group: string;
  name: string;
  shape: number[];
  dtype: StoredDtype;
  /** Byte offset into the data section. */
  offset: number;
}

interface Header<M> {
  meta: M;
  tensors: TensorEntry[];
}

/** A checkpoint in memory: named tensor groups (e.g. 'weights', 'optimizer') plus JSON metadata. */
export interface Checkpoint<M = Record<string, unknown>> {
  meta: M;
  groups: Record<string, Map<string, tf.Tensor>>;
}

export class CheckpointError extends Error {
  constructor(file: string, reason: string) {
    super(`checkpoint ${file}: ${reason}`);
    this.name = 'CheckpointError';
  }
}

export async function saveCheckpoint<M>(file: string, checkpoint: Checkpoint<M>): Promise<void> {
  const entries: TensorEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [group, tensors] of Object.entries(checkpoint.groups)) {
    for (const [name, t] of tensors) {
      if (t.dtype !== 'float32' && t.dtype !== 'int32') {
        throw new CheckpointError(file, `tensor ${group}/${name} has unsupported dtype ${t.dtype}`);
      }
      const values = (await t.data()) as Float32Array | Int32Array;
      const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      entries.push({ group, name, shape: t.shape, dtype: t.dtype, offset });
      chunks.push(bytes);
      offset += bytes.byteLength;
    }
  }
  const header = Buffer.from(JSON.stringify({ meta: checkpoint.meta, tensors: entries } satisfies Header<M>), 'utf8');
  // Pad the header so the data section starts 4-byte aligned and can be viewed as Float32Array.
  const pad = (4 - ((MAGIC.length + 4 + header.length) % 4)) % 4;
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(header.length + pad, MAGIC.length);

  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, prefix);
    fs.writeSync(fd, header);
    fs.writeSync(fd, Buffer.alloc(pad, 0x20));
    for (const c of chunks) fs.writeSync(fd, c);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export function readCheckpointMeta<M = Record<string, unknown>>(file: string): M {
  return parse<M>(file, fs.readFileSync(file)).header.meta;
}

export function loadCheckpoint<M = Record<string, unknown>>(file: string): Checkpoint<M> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new CheckpointError(file, (err as Error).message);
  }
  const { header, dataStart } = parse<M>(file, buf);
  const groups: Record<string, Map<string, tf.Tensor>> = {};
  for (const e of header.tensors) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    const start = dataStart + e.offset;
    if (start + count * 4 > buf.length) throw new CheckpointError(file, `truncated at tensor ${e.group}/${e.name}`);
    // Copy: the tensor must not keep the whole file buffer alive, and alignment is not guaranteed.
    const bytes = new Uint8Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + start + count * 4));
    const values = e.dtype === 'int32' ? new Int32Array(bytes.buffer) : new Float32Array(bytes.buffer);
    (groups[e.group] ??= new Map()).set(e.name, tf.tensor(values, e.shape, e.dtype));
  }
  return { meta: header.meta, groups };
}

export function disposeCheckpoint(checkpoint: Checkpoint<unknown>): void {
  for (const g of Object.values(checkpoint.groups)) for (const t of g.values()) t.dispose();
}

function parse<M>(file: string, buf: Buffer): { header: Header<M>; dataStart: number } {
  if (buf.length < MAGIC.length + 4 || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new CheckpointError(file, 'not a maskloop checkpoint (bad magic)');
  }
  const headerLength = buf.readUInt32LE(MAGIC.length);
  const dataStart = MAGIC.length + 4 + headerLength;
  if (dataStart > buf.length) throw new CheckpointError(file, 'truncated header');
  try {
    const header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, dataStart)) as Header<M>;
    return { header, dataStart };
  } catch {
    throw new CheckpointError(file, 'corrupt header');
  }
}
