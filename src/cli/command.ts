/**
 * The command-line framework: each command declares its options once, and help text, parsing,
 * errors and exit codes follow from that declaration.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const EXIT = {
  ok: 0,
  /** The work failed (bad data, engine error). */
  failed: 1,
  /** The command line itself was wrong. */
  usage: 2,
  /** The project is locked or busy beyond the timeout. */
  busy: 3,
  /** Interrupted by the user (SIGINT) or cancelled. */
  cancelled: 130,
} as const;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionSpec = { type: 'string' | 'boolean'; short?: string; default?: string | boolean; multiple?: boolean; description: string; valueName?: string };

export interface CommandContext {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  json: boolean;
  signal: AbortSignal;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  run(ctx: CommandContext): Promise<number | void>;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'JSON lines on stdout/stderr instead of a progress bar (default when not a terminal)' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export function helpText(command: Command): string {
  const all = { ...command.options, ...GLOBAL_OPTIONS };
  const lines = [`maskloop ${command.name} — ${command.summary}`, '', `usage: maskloop ${command.usage}`, '', 'options:'];
  const rows = Object.entries(all).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` <${spec.valueName ?? 'value'}>` : ''}`;
    const def = spec.default !== undefined && spec.type === 'string' ? ` (default ${spec.default})` : '';
    return [flag, spec.description + def] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length));
  for (const [flag, text] of rows) lines.push(`  ${flag.padEnd(width)}  ${text}`);
  return lines.join('\n');
}

export function parseCommandLine(command: Command, argv: string[]): { values: CommandContext['values']; positionals: string[] } {
  const options: ParseArgsConfig['options'] = {};
  for (const [name, spec] of Object.entries({ ...command.options, ...GLOBAL_OPTIONS })) {
    options[name] = {
      type: spec.type,
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
      ...(spec.default !== undefined ? { default: spec.default as never } : {}),
    };
  }
  try {
    const parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: parsed.values as CommandContext['values'], positionals: parsed.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A string option as a positive integer, with the option's name in the error. */
export function intOption(values: CommandContext['values'], name: string, min = 1): number {
  const raw = values[name];
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${raw}'`);
  return n;
}

/** A string option that must be one of a fixed list of values. */
export function choiceOption<T extends string>(values: CommandContext['values'], name: string, choices: readonly T[]): T {
  const raw = String(values[name]);
  const known = choices.find((c) => c === raw);
  if (!known) throw new UsageError(`--${name} takes ${choices.join(' or ')}, got '${raw}'`);
  return known;
}

export function numberOption(values: CommandContext['values'], name: string): number {
  const raw = values[name];
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got '${raw}'`);
  return n;
}
