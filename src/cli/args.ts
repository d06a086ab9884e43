// Command-line options, parsed by node:util's parseArgs with what it leaves to us: a value may start with
// a dash (`--prompt -3`, one of the seeds' own examples), a missing value is named, and an unknown option
// gets the nearest known one suggested.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './usage-error.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Levenshtein distance, for suggestions. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The known option nearest to name, if it is near enough to be what was meant. */
export function suggestion(name: string, known: string[]): string | undefined {
  let best: { option: string; score: number } | undefined;
  for (const option of known) {
    const score = option.startsWith(name) || name.startsWith(option) ? 0 : distance(name, option);
    if (score <= Math.max(2, Math.floor(option.length / 3)) && (!best || score < best.score)) best = { option, score };
  }
  return best?.option;
}

function unknownOption(arg: string, options: Options): UsageError {
  const name = arg.replace(/^-+/, '').split('=')[0]!;
  const near = suggestion(name, Object.keys(options));
  return new UsageError(`unknown option '${arg.split('=')[0]}'${near ? `; did you mean --${near}?` : ''}`);
}

export function parseOptions<T extends Options>(argv: string[], options: T, { positionals = false } = {}) {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.push(...argv.slice(i));
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      args.push(arg);
      continue;
    }
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : undefined;
    const option = name === undefined ? undefined : options[name];
    if (!option) throw unknownOption(arg, options);
    if (option.type === 'string' && !arg.includes('=')) {
      // The next argument is the value even when it starts with a dash, unless it is itself an option.
      const value = argv[i + 1];
      const isOption = value !== undefined && value.startsWith('--') && value.slice(2).split('=')[0]! in options;
      if (value === undefined || isOption) throw new UsageError(`--${name} needs a value`);
      args.push(`--${name}=${value}`);
      i++;
      continue;
    }
    args.push(arg);
  }
  try {
    return parseArgs({ args, options, allowPositionals: positionals, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
