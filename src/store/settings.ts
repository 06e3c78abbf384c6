import { z } from 'zod';
import type { Ctx } from './db';
import { now } from './db';
import { StoreError } from './errors';
import { parseArgument, readJson } from './validate';
import { MAX_CLASSES } from '../shared/types';

/**
 * Every project setting, with its schema and default: one place to look up what a key means and
 * what values it takes. A stored value that no longer fits its schema is reported, not guessed at.
 */
export const SETTINGS = {
  /** Start a fine-tune after this many new label versions; 0: never automatically. */
  autoRetrainAfterLabels: { schema: z.number().int().nonnegative(), default: 0 },
  /** Name recorded as the author of labels saved from this project's app. */
  defaultAuthor: { schema: z.string(), default: '' },
  /** Names of the label classes 1..n, in order (0 is background); shown in the class picker. */
  classNames: { schema: z.array(z.string().trim().min(1).max(60)).min(1).max(MAX_CLASSES), default: ['foreground'] },
} as const satisfies Record<string, { schema: z.ZodType; default: unknown }>;

export type SettingKey = keyof typeof SETTINGS;
export type Settings = { [K in SettingKey]: z.output<(typeof SETTINGS)[K]['schema']> };

function definition(key: string) {
  if (!Object.hasOwn(SETTINGS, key)) {
    throw new StoreError('argument', `unknown setting '${key}' (known: ${Object.keys(SETTINGS).join(', ')})`);
  }
  return SETTINGS[key as SettingKey];
}

export function getSetting<K extends SettingKey>(ctx: Ctx, key: K): Settings[K] {
  const def = definition(key);
  const row = ctx.stmt('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
  if (!row) return def.default as Settings[K];
  const parsed = def.schema.safeParse(readJson(row.value, `setting ${key}`));
  if (!parsed.success) throw new StoreError('data', `stored setting ${key} = ${row.value} is not valid: ${parsed.error.issues[0]?.message}`);
  return parsed.data as Settings[K];
}

export function setSetting<K extends SettingKey>(ctx: Ctx, key: K, value: Settings[K]): void {
  const def = definition(key);
  const v = parseArgument(def.schema, value, `setting ${key}`);
  ctx.write('saving a setting', () => {
    ctx
      .stmt('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at')
      .run(key, JSON.stringify(v), now());
  });
}

export function getSettings(ctx: Ctx): Settings {
  return Object.fromEntries(Object.keys(SETTINGS).map((k) => [k, getSetting(ctx, k as SettingKey)])) as Settings;
}
