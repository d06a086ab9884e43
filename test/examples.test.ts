import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatasetError, lengthProblem, parseExample, parseExamples, parseJsonl } from '../src/engine/data/examples.js';
import { MAX_INPUT_CHARS, MAX_OUTPUT_CHARS, charCount } from '../src/engine/data/limits.js';

const single = { turns: [{ role: 'user', text: '1' }, { role: 'model', text: '2' }] };

function throwsDataset(fn: () => unknown, message: string | RegExp, line?: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DatasetError, `expected a DatasetError, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    assert.equal(err.line, line);
    return true;
  });
}

test('input/output shapes', () => {
  for (const obj of [
    { text_input: '1', output: '2' },
    { textInput: '1', output: '2' },
    { input_text: '1', output_text: '2' },
    { inputText: '1', outputText: '2' },
  ]) {
    assert.deepEqual(parseExample(obj, 'x'), single);
  }
});

test('contents shape: system instruction, single part objects, role case, concatenated parts', () => {
  const example = parseExample(
    {
      systemInstruction: { role: 'system', parts: [{ text: 'Be ' }, { text: 'brief.' }] },
      contents: [
        { role: 'USER', parts: { text: 'Hi' } },
        { role: 'model', parts: [{ text: 'Hel' }, { text: 'lo' }] },
        { role: 'User', parts: [{ text: 'Bye' }] },
        { role: 'model', parts: [{ text: 'Ciao' }] },
      ],
    },
    'x',
  );
  assert.deepEqual(example, {
    systemInstruction: 'Be brief.',
    turns: [
      { role: 'user', text: 'Hi' },
      { role: 'model', text: 'Hello' },
      { role: 'user', text: 'Bye' },
      { role: 'model', text: 'Ciao' },
    ],
  });
  const snake = parseExample({ system_instruction: { parts: { text: 'S' } }, contents: [{ role: 'user', parts: [{ text: '1' }] }, { role: 'model', parts: [{ text: '2' }] }] }, 'x');
  assert.deepEqual(snake, { systemInstruction: 'S', ...single });
});

test('messages shape', () => {
  const example = parseExample(
    {
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: '1' },
        { role: 'assistant', content: '2' },
      ],
    },
    'x',
  );
  assert.deepEqual(example, { systemInstruction: 'S', ...single });
  assert.deepEqual(parseExample({ messages: [{ role: 'user', content: '1' }, { role: 'model', content: [{ type: 'text', text: '2' }] }] }, 'x'), single);
});

test('parseJsonl skips blank lines and reports structural errors by line', () => {
  const { examples, skipped } = parseJsonl('\n{"text_input":"1","output":"2"}\r\n\n  \n{"textInput":"a","output":"b"}\n');
  assert.equal(examples.length, 2);
  assert.deepEqual(skipped, []);

  throwsDataset(() => parseJsonl('{"text_input":"1","output":"2"}\n\n{oops'), /^line 3: invalid JSON: /, 3);
  throwsDataset(
    () => parseJsonl('{"text_input":"1","output":"2"}\n{"contents":[{"role":"user","parts":[{"text":"a"}]},{"role":"user","parts":[{"text":"b"}]},{"role":"model","parts":[{"text":"c"}]}]}'),
    'line 2: roles must alternate user/model',
    2,
  );
  throwsDataset(() => parseJsonl('{"contents":[{"role":"user","parts":[{"text":"a"}]}]}'), "line 1: the last turn must be the model's", 1);
  throwsDataset(() => parseJsonl('{"messages":[{"role":"assistant","content":"a"}]}'), "line 1: the first turn must be the user's", 1);
  throwsDataset(() => parseJsonl('[1]'), 'line 1: expected a JSON object', 1);
  throwsDataset(() => parseJsonl('{"prompt":"a"}'), /^line 1: unrecognised example/, 1);
  throwsDataset(() => parseJsonl('{"text_input":"a"}'), /^line 1: missing the output/, 1);
  throwsDataset(() => parseJsonl('{"text_input":"a","output":""}'), 'line 1: a model turn is empty', 1);
  throwsDataset(() => parseJsonl('{"contents":[{"role":"user","parts":[{"inlineData":{}}]}]}'), /^line 1: contents\[0\]\.parts\[0\] must be a text part/, 1);
  // Errors come in line order even when a later line is not JSON.
  throwsDataset(() => parseJsonl('{"text_input":"a"}\n{oops'), /^line 1: /, 1);
});

test('an empty dataset is an error', () => {
  throwsDataset(() => parseJsonl(''), 'the dataset has no examples');
  throwsDataset(() => parseJsonl('\n \n'), 'the dataset has no examples');
  throwsDataset(() => parseExamples([]), 'the dataset has no examples');
});

test('length limits throw by default, or skip and report', () => {
  assert.equal(MAX_INPUT_CHARS, 40_000);
  assert.equal(MAX_OUTPUT_CHARS, 5_000);
  const ok = JSON.stringify({ text_input: 'a', output: 'b' });
  const longInput = JSON.stringify({ text_input: 'x'.repeat(41234), output: 'b' });
  const longOutput = JSON.stringify({ text_input: 'a', output: 'y'.repeat(5001) });
  const text = [ok, '', longInput, ok, longOutput].join('\n');

  throwsDataset(() => parseJsonl(text), 'line 3: an input is 41234 characters; the limit is 40000', 3);
  const { examples, skipped } = parseJsonl(text, { overLength: 'skip' });
  assert.equal(examples.length, 2);
  assert.deepEqual(skipped, [
    { line: 3, index: 1, reason: 'an input is 41234 characters; the limit is 40000' },
    { line: 5, index: 3, reason: 'an output is 5001 characters; the limit is 5000' },
  ]);
  throwsDataset(() => parseJsonl(longOutput, { overLength: 'skip' }), /no examples within the length limits/);

  // Input counts system and every user turn; limits are configurable.
  const multi = { systemInstruction: 'ss', turns: [{ role: 'user' as const, text: 'uu' }, { role: 'model' as const, text: 'm' }, { role: 'user' as const, text: 'u' }, { role: 'model' as const, text: 'mmm' }] };
  assert.equal(lengthProblem(multi, { maxInputChars: 5 }), undefined);
  assert.equal(lengthProblem(multi, { maxInputChars: 4 }), 'an input is 5 characters; the limit is 4');
  assert.equal(lengthProblem(multi, { maxOutputChars: 2 }), 'an output is 3 characters; the limit is 2');
});

test('characters are code points', () => {
  assert.equal(charCount('a😀é'), 3);
});

test('parseExamples names examples by position', () => {
  assert.deepEqual(parseExamples([{ text_input: '1', output: '2' }]).examples, [single]);
  assert.throws(
    () => parseExamples([{ text_input: '1', output: '2' }, { text_input: 1, output: '2' }]),
    (err: unknown) => err instanceof DatasetError && err.message === 'example 2: "text_input" must be a string' && err.index === 1 && err.line === undefined,
  );
});
