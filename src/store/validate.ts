import { z } from 'zod';
import { StoreError } from './errors';

/** Parses caller input; failures become StoreError('argument') naming what was wrong and where. */
export function parseArgument<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
  throw new StoreError('argument', `${what}: ${issues.join('; ')}`);
}

export const id = z.number().int().positive();
export const count = z.number().int().nonnegative();
export const jsonObject = z.record(z.string(), z.json());

export function oneOrMany<T extends readonly [string, ...string[]]>(values: T) {
  return z.union([z.enum(values), z.array(z.enum(values)).readonly()]).optional();
}

export function asList<T>(value: T | readonly T[] | undefined): readonly T[] | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

/** Stored JSON read back; a value that does not parse means the file was edited or damaged. */
export function readJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new StoreError('data', `${what}: stored JSON does not parse (${(error as Error).message})`, { cause: error });
  }
}
