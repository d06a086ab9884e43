import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../src/engine/tokenizer/tokenizer.js';
import { TextStreamer } from '../src/engine/tokenizer/streamer.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const storiesDir = join(root, 'models/stories260K');
const goldenPath = join(root, 'test/golden-greedy.txt');
const greedyPrefix = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267];

async function withModelDir(files: Record<string, unknown>, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'attune-tok-'));
  try {
    await copyFile(join(storiesDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    for (const [name, content] of Object.entries(files)) {
      await writeFile(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
    }
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const storiesConfig = async () => JSON.parse(await readFile(join(storiesDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

test('loads stories260K special tokens and sizes', async () => {
  const tok = await Tokenizer.load(storiesDir);
  assert.equal(tok.bosTokenId, 1);
  assert.deepEqual(tok.eosTokenIds, [2]);
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.addBosToken, true);
  assert.equal(tok.addEosToken, false);
  assert.equal(tok.chatTemplate, undefined);
  assert.throws(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true }), /no chat template/);
});

test('encode adds BOS only with special tokens, as transformers does for Llama', async () => {
  const tok = await Tokenizer.load(storiesDir);
  assert.deepEqual(tok.encode('1\n2\n'), [1, 410, 475, 13, 479, 13]);
  assert.deepEqual(tok.encode('1\n2\n', { addSpecialTokens: false }), [410, 475, 13, 479, 13]);
  assert.deepEqual(tok.encode(''), [1]);
  // SentencePiece prepends "▁", so tokenization does not compose.
  assert.notDeepEqual(
    [...tok.encode('a', { addSpecialTokens: false }), ...tok.encode('b', { addSpecialTokens: false })],
    tok.encode('ab', { addSpecialTokens: false }),
  );
});

test('golden greedy text: decode of the known prefix and encode round trip', async () => {
  const tok = await Tokenizer.load(storiesDir);
  const golden = await readFile(goldenPath, 'utf8');
  const prefix = tok.decode([1, ...greedyPrefix], { skipSpecialTokens: true });
  assert.equal(prefix, 'Once upon a time, there was a little girl named Lily. She loved to');
  assert.ok(golden.startsWith(prefix));

  const ids = tok.encode(golden);
  assert.deepEqual(ids.slice(0, greedyPrefix.length + 1), [1, ...greedyPrefix]);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), golden);
  assert.equal(tok.decode(ids), `<s> ${golden}`); // the decoder's leading-space strip sees "<s>" first
});

test('decode handles empty input and byte-fallback characters', async () => {
  const tok = await Tokenizer.load(storiesDir);
  assert.equal(tok.decode([]), '');
  const text = 'naïve 日本 ☃ ok';
  assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), text);
});

test('TextStreamer never emits a broken character and reproduces the text', async () => {
  const tok = await Tokenizer.load(storiesDir);
  const text = 'Lily saw 日本 and a ☃. She said, "Hi!"\nThe end.';
  const ids = tok.encode(text, { addSpecialTokens: false });
  const streamer = new TextStreamer(tok);
  const deltas = ids.map((id) => streamer.push(id));
  const rest = streamer.flush();
  assert.equal(rest, '');
  assert.ok(deltas.every((d) => !d.includes('\uFFFD')));
  assert.ok(deltas.includes(''), 'byte pieces of 日 are held back');
  assert.equal(deltas.join(''), text);
  assert.equal(streamer.text, text);
});

test('TextStreamer keeps a leading space given context ids, and re-bases on long streams', async () => {
  const tok = await Tokenizer.load(storiesDir);
  const golden = await readFile(goldenPath, 'utf8');
  const ids = tok.encode(golden, { addSpecialTokens: false });
  const cut = ids.findIndex((id, i) => i >= 5 && tok.idToToken(id)!.startsWith('▁'));
  const streamer = new TextStreamer(tok, { contextIds: ids.slice(0, cut) });
  const out = ids.slice(cut).map((id) => streamer.push(id)).join('') + streamer.flush();
  assert.equal(tok.decode(ids.slice(0, cut)) + out, golden);
  assert.match(out, /^ /);
});

test('TextStreamer flushes an incomplete character as U+FFFD', async () => {
  const tok = await Tokenizer.load(storiesDir);
  const streamer = new TextStreamer(tok);
  assert.equal(streamer.push(tok.tokenToId('<0xE6>')!), '');
  assert.equal(streamer.flush(), '\uFFFD');
});

test('load errors name the directory and the file', async () => {
  const missing = join(tmpdir(), 'attune-no-such-model');
  await assert.rejects(Tokenizer.load(missing), (err: Error) => err.message.includes(missing) && err.message.includes('tokenizer.json'));
  await withModelDir({ 'tokenizer.json': '{ not json' }, async (dir) => {
    await assert.rejects(Tokenizer.load(dir), (err: Error) => err.message.includes(join(dir, 'tokenizer.json')) && /invalid JSON/.test(err.message));
  });
  await withModelDir({ 'tokenizer.json': '{}' }, async (dir) => {
    await assert.rejects(Tokenizer.load(dir), (err: Error) => err.message.includes(join(dir, 'tokenizer.json')));
  });
});

const template =
  '{{ bos_token }}{% for m in messages %}' +
  "{% if m.role == 'system' %}{{ raise_exception('no system role') }}{% endif %}" +
  '<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}' +
  '{% if add_generation_prompt %}<|assistant|>\n{% endif %}';

test('applyChatTemplate renders with bos/eos, generation prompt and raise_exception (a jinja built-in)', async () => {
  await withModelDir({ 'tokenizer_config.json': { ...(await storiesConfig()), chat_template: template } }, async (dir) => {
    const tok = await Tokenizer.load(dir);
    assert.equal(tok.chatTemplate, template);
    const messages = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello' },
    ];
    assert.equal(tok.applyChatTemplate(messages, { addGenerationPrompt: false }), '<s><|user|>\nHi</s>\n<|assistant|>\nHello</s>\n');
    assert.equal(tok.applyChatTemplate(messages.slice(0, 1), { addGenerationPrompt: true }), '<s><|user|>\nHi</s>\n<|assistant|>\n');
    assert.throws(() => tok.applyChatTemplate([{ role: 'system', content: 'x' }], { addGenerationPrompt: false }), /no system role/);
    // Special tokens written by the template encode as themselves.
    const ids = tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: false }), { addSpecialTokens: false });
    assert.equal(ids[0], 1);
    assert.equal(ids.filter((id) => id === 2).length, 2);
  });
});

test("chat templates: Python's strip/lstrip/rstrip(chars), and template kwargs such as enable_thinking", async () => {
  const source =
    "{% for m in messages %}[{{ m.content.lstrip('\\n') }}|{{ m.content.rstrip() }}|{{ m.content.strip(' \\nx') }}]{% endfor %}" +
    '{% if enable_thinking is defined and enable_thinking is false %}no-think{% endif %}';
  await withModelDir({ 'tokenizer_config.json': { ...(await storiesConfig()), chat_template: source } }, async (dir) => {
    const tok = await Tokenizer.load(dir);
    const messages = [{ role: 'user', content: '\n\n  x hi x \n' }];
    assert.equal(tok.applyChatTemplate(messages, { addGenerationPrompt: false }), '[  x hi x \n|\n\n  x hi x|hi]');
    assert.equal(tok.applyChatTemplate(messages, { addGenerationPrompt: false, kwargs: { enable_thinking: false } }), '[  x hi x \n|\n\n  x hi x|hi]no-think');
  });
});

test('chat template sources: named list, chat_template.jinja precedence; generation_config EOS union', async () => {
  const config = { ...(await storiesConfig()), chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] };
  await withModelDir({ 'tokenizer_config.json': config, 'generation_config.json': { eos_token_id: [2, 13] } }, async (dir) => {
    const tok = await Tokenizer.load(dir);
    assert.equal(tok.chatTemplate, 'D');
    assert.deepEqual(tok.eosTokenIds, [2, 13]);
  });
  await withModelDir({ 'tokenizer_config.json': config, 'chat_template.jinja': 'J' }, async (dir) => {
    assert.equal((await Tokenizer.load(dir)).chatTemplate, 'J');
  });
  await withModelDir({ 'tokenizer_config.json': config, 'chat_template.json': { chat_template: 'C' } }, async (dir) => {
    assert.equal((await Tokenizer.load(dir)).chatTemplate, 'C');
  });
});

test('add_bos_token/add_eos_token in tokenizer_config override the post-processor', async () => {
  await withModelDir({ 'tokenizer_config.json': { ...(await storiesConfig()), add_bos_token: false, add_eos_token: true } }, async (dir) => {
    const tok = await Tokenizer.load(dir);
    assert.deepEqual(tok.encode('1'), [410, 475, 2]);
  });
  // Without the flags, tokenizer.json's post-processor decides (it adds BOS here).
  await withModelDir({ 'tokenizer_config.json': { bos_token: '<s>', eos_token: '</s>' } }, async (dir) => {
    const tok = await Tokenizer.load(dir);
    assert.deepEqual(tok.encode('1'), [1, 410, 475]);
    assert.equal(tok.addBosToken, true);
  });
});
