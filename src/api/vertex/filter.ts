// The list filter (AIP-160 subset) over tuning jobs, models and endpoints: comparisons joined by AND, OR, NOT and
// parentheses.
//   state = "JOB_STATE_SUCCEEDED"      state != JOB_STATE_FAILED      labels.team = "a"      labels.team:*
//   base_model = "gemini-2.5-flash"    create_time > "2026-01-01T00:00:00Z"    display_name:"numbers"
// OR binds tighter than AND, as AIP-160 says. `:` on a text field means "contains"; `labels.k:*` means "has k".
// Each collection names its own fields (camelCase here; snake_case in filters); labels.<key> works on all.
import { invalidArgument } from '../../service/errors.js';
import type { TunedModel } from '../../service/tuning/tuned-model.js';
import { camelCase } from '../plugins/lenient-json.js';
import { jobStateOf } from './wire.js';

export type JobPredicate = (model: TunedModel) => boolean;

export type FilterFields = Record<string, (m: TunedModel) => string | undefined>;

const jobFields: FilterFields = {
  state: (m) => jobStateOf(m),
  baseModel: (m) => m.baseModel.replace(/^models\//, ''),
  tunedModelDisplayName: (m) => m.displayName,
  displayName: (m) => m.displayName,
  description: (m) => m.description,
  createTime: (m) => m.createTime,
  updateTime: (m) => m.updateTime,
  startTime: (m) => m.startTime,
  endTime: (m) => m.completeTime,
};

const token = /\s*(\(|\)|!=|>=|<=|=|>|<|:|"(?:[^"\\]|\\.)*"|[^\s()=!<>:"]+)/y;

export function parseFilter(filter: string | undefined, fields: FilterFields = jobFields): JobPredicate {
  if (!filter?.trim()) return () => true;
  const tokens: string[] = [];
  let end = 0; // a failed sticky match resets lastIndex, so the position is kept here
  token.lastIndex = 0;
  for (let match; (match = token.exec(filter)); end = token.lastIndex) tokens.push(match[1]!);
  if (filter.slice(end).trim()) fail(filter, `unexpected text at "${filter.slice(end).trim()}"`);
  let at = 0;
  const peek = () => tokens[at];
  const next = () => tokens[at++];

  // expression := sequence (AND sequence)* ; sequence := factor (OR factor)* ; factor := NOT? (term | '(' expression ')')
  const expression = (): JobPredicate => {
    const parts = [sequence()];
    while (peek() !== undefined && peek() !== ')') {
      if (peek() === 'AND') next();
      parts.push(sequence());
    }
    return (m) => parts.every((p) => p(m));
  };
  const sequence = (): JobPredicate => {
    const parts = [factor()];
    while (peek() === 'OR') {
      next();
      parts.push(factor());
    }
    return (m) => parts.some((p) => p(m));
  };
  const factor = (): JobPredicate => {
    if (peek() === 'NOT' || peek() === '-') {
      next();
      const inner = factor();
      return (m) => !inner(m);
    }
    if (peek() === '(') {
      next();
      const inner = expression();
      if (next() !== ')') fail(filter, 'a "(" is not closed');
      return inner;
    }
    return comparison();
  };
  const comparison = (): JobPredicate => {
    const name = next();
    const op = next();
    const raw = next();
    if (name === undefined || op === undefined || raw === undefined || !/^(!=|>=|<=|=|>|<|:)$/.test(op)) {
      fail(filter, 'expected comparisons like state = "JOB_STATE_SUCCEEDED"');
    }
    const value = raw.startsWith('"') ? quoted(raw, filter) : raw;
    const read = fieldReader(name, filter, fields);
    if (/_time$|Time$/.test(name)) {
      const time = Date.parse(value);
      if (Number.isNaN(time)) fail(filter, `${name} needs an RFC 3339 time, not ${JSON.stringify(value)}`);
      return (m) => compare(timeKey(read(m)), op, timeKey(value)!);
    }
    return (m) => compare(read(m), op, value);
  };

  const predicate = expression();
  if (at < tokens.length) fail(filter, `unexpected "${tokens[at]}"`);
  return predicate;
}

function fieldReader(name: string, filter: string, fields: FilterFields): (m: TunedModel) => string | undefined {
  if (name.startsWith('labels.')) {
    const key = name.slice('labels.'.length);
    // Own keys only: `labels.constructor` is a label nobody set, not Object's constructor.
    return (m) => (Object.hasOwn(m.labels, key) ? m.labels[key] : undefined);
  }
  const field = camelCase(name);
  const read = Object.hasOwn(fields, field) ? fields[field] : undefined;
  if (!read) {
    const names = Object.keys(fields).map((f) => f.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
    fail(filter, `unknown field "${name}"; filter on ${names.slice(0, 1).join('')}, labels.<key>, ${names.slice(1, -1).join(', ')} or ${names.at(-1)}`);
  }
  return read;
}

/** A double-quoted string literal (AIP-160 uses JSON's escapes). */
function quoted(raw: string, filter: string): string {
  try {
    return JSON.parse(raw) as string;
  } catch {
    fail(filter, `${raw} is not a valid string literal`);
  }
}

/** Times compare as instants: a zero-padded millisecond count orders like the instant. */
const timeKey = (value: string | undefined) => (value === undefined ? undefined : String(Date.parse(value)).padStart(16, '0'));

function compare(actual: string | undefined, op: string, value: string): boolean {
  if (op === ':') return actual !== undefined && (value === '*' || actual.includes(value));
  if (actual === undefined) return op === '!=';
  switch (op) {
    case '=': return actual === value;
    case '!=': return actual !== value;
    case '>': return actual > value;
    case '<': return actual < value;
    case '>=': return actual >= value;
    default: return actual <= value;
  }
}

function fail(filter: string, why: string): never {
  throw invalidArgument(`Invalid filter ${JSON.stringify(filter)}: ${why}.`, 'filter');
}
