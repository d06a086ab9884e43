import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../src/engine/tokenizer/tokenizer.js';
import type { Example } from '../src/engine/data/examples.js';
import {
  FramingError,
  IGNORE_INDEX,
  chooseFraming,
  frameExample,
  framePrompt,
  parseFraming,
  stopSequencesFor,
  type Framing,
} from '../src/engine/data/framing.js';
import { packBatch } from '../src/engine/train/packing.js';

const storiesDir = fileURLToPath(new URL('../../models/stories260K', import.meta.url));
const numberExample: Example = { turns: [{ role: 'user', text: '1' }, { role: 'model', text: '2' }] };

async function withTemplate(template: string, fn: (tok: Tokenizer) => Promise<void> | void): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'attune-framing-'));
  try {
    await copyFile(join(storiesDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const config = JSON.parse(await readFile(join(storiesDir, 'tokenizer_config.json'), 'utf8')) as object;
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: template }));
    await fn(await Tokenizer.load(dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The ids that targets mark as trained, in order. */
const trainedIds = (targets: number[]) => targets.filter((t) => t !== IGNORE_INDEX);

test('plain framing: "1" -> "2" trains as <s>1\\n2\\n with loss on 2\\n', async () => {
  const tok = await Tokenizer.load(storiesDir);
  const framing = chooseFraming(tok, [numberExample]);
  assert.deepEqual(framing, { kind: 'plain', terminator: '\n' });
  assert.deepEqual(stopSequencesFor(framing), ['\n']);

  const { ids, targets } = frameExample(tok, framing, numberExample);
  assert.deepEqual(ids, tok.encode('1\n2\n'));
  assert.deepEqual(ids, [1, 410, 475, 13, 479, 13]);
  assert.deepEqual(targets, [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 479, 13, IGNORE_INDEX]);
  assert.equal(tok.decode(trainedIds(targets)), '2\n');

  const prompt = framePrompt(tok, framing, { turns: [{ role: 'user', text: '1' }] });
  assert.deepEqual(prompt, ids.slice(0, 4));
  assert.equal(tok.decode(prompt), '<s> 1\n');
});

test('plain framing: system instruction and several turns', async () => {
  const tok = await Tokenizer.load(storiesDir);
  const framing: Framing = { kind: 'plain', terminator: '\n' };
  const example: Example = {
    systemInstruction: 'Add one.',
    turns: [
      { role: 'user', text: 'one' },
      { role: 'model', text: 'two' },
      { role: 'user', text: 'five' },
      { role: 'model', text: 'six' },
    ],
  };
  const { ids, targets } = frameExample(tok, framing, example);
  assert.deepEqual(ids, tok.encode('Add one.\n\none\ntwo\nfive\nsix\n'));
  assert.equal(tok.decode(trainedIds(targets)), 'two\nsix\n');

  const prompt = framePrompt(tok, framing, { systemInstruction: example.systemInstruction, turns: example.turns.slice(0, 3) });
  const sixStart = targets.findIndex((t, i) => t !== IGNORE_INDEX && i > ids.length / 2 && targets[i - 1] === IGNORE_INDEX);
  assert.deepEqual(prompt, ids.slice(0, sixStart + 1));
});

test('plain framing: trained tokens are exactly what follows the framed prompt, even for leading spaces', async () => {
  const tok = await Tokenizer.load(storiesDir);
  const framing: Framing = { kind: 'plain', terminator: '\n' };
  const example: Example = { turns: [{ role: 'user', text: 'Lily said' }, { role: 'model', text: ' hi to 日本' }] };
  const { ids, targets } = frameExample(tok, framing, example);
  const prompt = framePrompt(tok, framing, { turns: example.turns.slice(0, 1) });
  assert.deepEqual(ids.slice(0, prompt.length), prompt);
  assert.deepEqual(trainedIds(targets), ids.slice(prompt.length));
  assert.equal(targets.at(-1), IGNORE_INDEX);
});

test('plain terminator avoids newlines inside outputs', async () => {
  const tok = await Tokenizer.load(storiesDir);
  const lines: Example = { turns: [{ role: 'user', text: 'a' }, { role: 'model', text: 'b\nc' }] };
  const framing = chooseFraming(tok, [numberExample, lines]);
  assert.deepEqual(framing, { kind: 'plain', terminator: '\n\n' });
  const { ids, targets } = frameExample(tok, framing, lines);
  assert.deepEqual(ids, tok.encode('a\nb\nc\n\n'));
  assert.equal(tok.decode(trainedIds(targets)), 'b\nc\n\n');
});

test('framing descriptors round-trip through JSON', () => {
  const framings: Framing[] = [{ kind: 'plain', terminator: '\n' }, { kind: 'chat-template' }, { kind: 'chat-template', templateKwargs: { enable_thinking: false } }];
  for (const framing of framings) {
    assert.deepEqual(parseFraming(JSON.parse(JSON.stringify(framing))), framing);
  }
  assert.throws(() => parseFraming({ kind: 'plain' }), /invalid framing/);
});

const chatTemplate =
  '{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}' +
  '{% if add_generation_prompt %}<|assistant|>\n{% endif %}';

test('chat-template framing trains the model turns, closing tokens included', async () => {
  await withTemplate(chatTemplate, (tok) => {
    const framing = chooseFraming(tok);
    assert.deepEqual(framing, { kind: 'chat-template', templateKwargs: { enable_thinking: false } });
    assert.deepEqual(stopSequencesFor(framing), []);
    const example: Example = {
      systemInstruction: 'Be kind.',
      turns: [
        { role: 'user', text: 'Hi' },
        { role: 'model', text: 'Hello' },
        { role: 'user', text: 'Bye' },
        { role: 'model', text: 'See you' },
      ],
    };
    const { ids, targets } = frameExample(tok, framing, example);
    const text =
      '<s><|system|>\nBe kind.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello</s>\n<|user|>\nBye</s>\n<|assistant|>\nSee you</s>\n';
    assert.deepEqual(ids, tok.encode(text, { addSpecialTokens: false }));
    assert.equal(ids.filter((id) => id === 1).length, 1, 'BOS comes from the template only');
    // The decoded spaces after special tokens are real: as in HF tokenizers, the
    // `Prepend ▁` normaliser runs on each piece of text between special tokens.
    assert.equal(tok.decode(trainedIds(targets)), 'Hello</s> \nSee you</s> \n');

    const prompt = framePrompt(tok, framing, { systemInstruction: 'Be kind.', turns: example.turns.slice(0, 3) });
    assert.deepEqual(prompt, tok.encode('<s><|system|>\nBe kind.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello</s>\n<|user|>\nBye</s>\n<|assistant|>\n', { addSpecialTokens: false }));
    assert.deepEqual(ids.slice(0, prompt.length), prompt);
    assert.deepEqual(trainedIds(targets).slice(-5), ids.slice(-5));
  });
});

test('chat-template framing folds the system instruction into the first turn when the template refuses it', async () => {
  const strict = chatTemplate.replace('{% for m in messages %}', "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}");
  await withTemplate(strict, (tok) => {
    const prompt = framePrompt(tok, { kind: 'chat-template' }, { systemInstruction: 'Be kind.', turns: [{ role: 'user', text: 'Hi' }] });
    assert.deepEqual(prompt, tok.encode('<s><|user|>\nBe kind.\n\nHi</s>\n<|assistant|>\n', { addSpecialTokens: false }));
  });
});

test('chat-template framing refuses templates that rewrite earlier turns', async () => {
  // Renders only the last message, so a prefix is not a prefix of the whole.
  await withTemplate('{{ messages[-1].content }}{% if add_generation_prompt %}>{% endif %}', (tok) => {
    assert.throws(() => frameExample(tok, { kind: 'chat-template' }, numberExample), FramingError);
  });
});

test('framePrompt requires a final user turn', async () => {
  const tok = await Tokenizer.load(storiesDir);
  assert.throws(() => framePrompt(tok, { kind: 'plain', terminator: '\n' }, numberExample), FramingError);
});

test('a template that rewrites answered turns frames each model turn as its own sequence, packed as separate segments', async () => {
  // Like Qwen3's: the last answer carries a marker that earlier answers lose once a later turn follows.
  const rewriting =
    "{% for m in messages %}<|{{ m.role }}|>\n{% if m.role == 'assistant' and loop.last %}[a]{% endif %}{{ m.content }}{{ eos_token }}\n{% endfor %}" +
    '{% if add_generation_prompt %}<|assistant|>\n[a]{% endif %}';
  await withTemplate(rewriting, (tok) => {
    const framing = chooseFraming(tok);
    const example: Example = {
      turns: [
        { role: 'user', text: 'Hi' },
        { role: 'model', text: 'Hello' },
        { role: 'user', text: 'Bye' },
        { role: 'model', text: 'See you' },
      ],
    };
    const framed = frameExample(tok, framing, example);
    const first = framePrompt(tok, framing, { turns: example.turns.slice(0, 1) });
    const second = framePrompt(tok, framing, { turns: example.turns.slice(0, 3) });
    const firstSequence = tok.encode('<|user|>\nHi</s>\n<|assistant|>\n[a]Hello</s>\n', { addSpecialTokens: false });
    assert.deepEqual(framed.starts, [firstSequence.length]);
    assert.deepEqual(framed.ids.slice(0, firstSequence.length), firstSequence);
    assert.deepEqual(framed.ids.slice(firstSequence.length, firstSequence.length + second.length), second, 'the second answer follows its own prompt');
    assert.ok(tok.decode(second).includes('<|assistant|>\nHello'), 'the answered turn is rendered as history, without the marker');
    assert.deepEqual(framed.ids.slice(0, first.length), first);
    assert.equal(framed.targets[firstSequence.length - 1], IGNORE_INDEX, 'nothing is predicted across sequences');
    assert.equal(tok.decode(trainedIds(framed.targets)), 'Hello</s> \nSee you</s> \n');

    const packed = packBatch([framed, frameExample(tok, framing, numberExample)]);
    const positions = packed.positions.toNumbers();
    const segments = packed.segments.toNumbers();
    const n = framed.ids.length;
    assert.deepEqual(positions.slice(0, n), [...framed.ids.keys()].map((i) => (i < firstSequence.length ? i : i - firstSequence.length)));
    assert.deepEqual(new Set(segments.slice(0, firstSequence.length)), new Set([1]));
    assert.deepEqual(new Set(segments.slice(firstSequence.length, n)), new Set([2]));
    for (const t of Object.values(packed)) if (typeof t === 'object' && !Array.isArray(t)) t.dispose();
  });
});

test('a template that puts scaffolding before the answer, not in its generation prompt, is refused', async () => {
  // Qwen3 without enable_thinking=false does this with its empty think block.
  const scaffolding =
    "{% for m in messages %}<|{{ m.role }}|>\n{% if m.role == 'assistant' %}<think></think>{% endif %}{{ m.content }}\n{% endfor %}" +
    '{% if add_generation_prompt %}<|assistant|>\n{% endif %}';
  await withTemplate(scaffolding, (tok) => {
    assert.throws(() => frameExample(tok, chooseFraming(tok), numberExample), /puts "<think><\/think>" before the text of turn 2/);
  });
});
