// Python's str.strip/lstrip/rstrip(chars) for @huggingface/jinja.
//
// The library (0.5.11, the newest) accepts and ignores `chars`, always trimming whitespace, where Jinja2 calls
// Python's methods. Real templates depend on it: Qwen3 renders the last answer as `content.lstrip('\n')`, so
// an answer starting with spaces lost them, and training and generation would disagree with transformers
// (swift-jinja had the same bug: huggingface/swift-jinja#64). The library exports no hook for string
// methods, so this replaces them on its string value class, reached through a value it creates. Importing
// this module applies it once; test/real-tokenizers.test.ts fails if the library's internals move.
import { Environment } from '@huggingface/jinja';

interface RuntimeValue {
  value: unknown;
}
type Builtins = Map<string, unknown>;
type FunctionValueClass = new (fn: (args: RuntimeValue[]) => RuntimeValue) => RuntimeValue;
type StringValueClass = new (value: string) => RuntimeValue;

/** Python's str.isspace() characters, which strip() removes when given no chars. */
const PYTHON_WHITESPACE = new Set(
  [...'\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000'].concat(
    Array.from({ length: 11 }, (_, i) => String.fromCharCode(0x2000 + i)),
  ),
);

function stripChars(text: string, chars: unknown, left: boolean, right: boolean): string {
  if (chars !== undefined && chars !== null && typeof chars !== 'string') throw new Error('strip arg must be None or str');
  const set = typeof chars === 'string' ? new Set(chars) : PYTHON_WHITESPACE;
  const points = [...text];
  let start = 0;
  let end = points.length;
  if (left) while (start < end && set.has(points[start]!)) start++;
  if (right) while (end > start && set.has(points[end - 1]!)) end--;
  return points.slice(start, end).join('');
}

function install(): void {
  const probe = new Environment();
  const sample = probe.set('sample', '') as unknown as RuntimeValue & { builtins: Builtins };
  const StringValue = sample.constructor as StringValueClass;
  const FunctionValue = (sample.builtins.get('upper') as object).constructor as FunctionValueClass;
  const original = Object.getOwnPropertyDescriptor(StringValue.prototype, 'builtins')?.get;
  if (!original) throw new Error('@huggingface/jinja: string values have no builtins to patch');
  const patched = new WeakSet<Builtins>();
  Object.defineProperty(StringValue.prototype, 'builtins', {
    configurable: true,
    get(this: RuntimeValue) {
      const builtins = original.call(this) as Builtins;
      if (!patched.has(builtins)) {
        const text = this.value as string;
        const method = (left: boolean, right: boolean) =>
          new FunctionValue((args) => new StringValue(stripChars(text, args[0]?.value, left, right)));
        builtins.set('strip', method(true, true));
        builtins.set('lstrip', method(true, false));
        builtins.set('rstrip', method(false, true));
        patched.add(builtins);
      }
      return builtins;
    },
  });
}

install();
