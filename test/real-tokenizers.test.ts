// The real Qwen3 (151,669 tokens), Gemma 3 (262,145) and Llama 3.1 Instruct (128,256) tokenizers and chat
// templates against what Hugging Face's own code makes of them (test/fixtures/make_chat_reference.py:
// transformers' apply_chat_template, the Rust `tokenizers`): renderings byte for byte, token ids, decodes,
// and the framing's trained spans and token counts, for single-turn, system and multi-turn conversations.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Tokenizer, type ChatMessage } from '../src/engine/tokenizer/tokenizer.js';
import { parseExamples, parseJsonl } from '../src/engine/data/examples.js';
import { IGNORE_INDEX, chatTemplateKwargs, chooseFraming, frameExample, framePrompt } from '../src/engine/data/framing.js';
import { dataStatsOf } from '../src/service/tuning/data-stats.js';
import { datasetJsonl, families, reference, tokenizerDir, type ReferenceExample } from './helpers/real-tokenizers.js';

const messagesOf = (example: ReferenceExample): ChatMessage[] => [
  ...(example.systemInstruction ? [{ role: 'system', content: example.systemInstruction }] : []),
  ...example.turns.map((t) => ({ role: t.role === 'model' ? 'assistant' : 'user', content: t.text })),
];
const exampleOf = (e: ReferenceExample) => ({ ...(e.systemInstruction ? { systemInstruction: e.systemInstruction } : {}), turns: e.turns });

for (const family of families) {
  describe(family, () => {
    const expected = reference(family);
    const all = [...expected.dataset, ...expected.conversations];
    let tokenizer: Tokenizer;

    test('loads, with every token counted', async () => {
      const started = performance.now();
      tokenizer = await Tokenizer.load(tokenizerDir(family));
      const ms = performance.now() - started;
      assert.equal(tokenizer.vocabSize, expected.vocabSize);
      assert.ok(tokenizer.chatTemplate);
      assert.ok(ms < 20_000, `loading took ${Math.round(ms)} ms`);
    });

    test('chat templates render as transformers renders them (enable_thinking=false)', () => {
      for (const example of all) {
        const rendered = tokenizer.applyChatTemplate(messagesOf(example), { addGenerationPrompt: false, kwargs: chatTemplateKwargs });
        assert.equal(rendered, example.rendered);
      }
    });

    test('prompts: the rendering and the token ids of Hugging Face', () => {
      const framing = chooseFraming(tokenizer);
      for (const example of all) {
        const modelIndices = example.turns.flatMap((t, i) => (t.role === 'model' ? [i] : []));
        modelIndices.forEach((index, n) => {
          const turn = example.modelTurns[n]!;
          const turns = example.turns.slice(0, index);
          const messages = messagesOf({ ...example, turns });
          assert.equal(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, kwargs: chatTemplateKwargs }), turn.prompt);
          const ids = framePrompt(tokenizer, framing, { systemInstruction: example.systemInstruction ?? undefined, turns });
          assert.deepEqual(ids, turn.promptIds);
        });
      }
    });

    test('training frames: ids, trained tokens and counts equal Hugging Face; answers decode as Hugging Face decodes them', () => {
      const framing = chooseFraming(tokenizer);
      for (const example of all) {
        const framed = frameExample(tokenizer, framing, exampleOf(example));
        // Each sequence is the rendering through its last model turn: that turn's prompt ids, then its trained ids.
        const sequenceIds = example.sequences.flatMap((text) => {
          const last = example.modelTurns.find((t) => t.prompt + t.trained === text)!;
          return [...last.promptIds, ...last.trainedIds];
        });
        assert.deepEqual(framed.ids, sequenceIds);
        assert.equal((framed.starts?.length ?? 0) + 1, example.sequences.length);
        const trained = framed.targets.filter((t) => t !== IGNORE_INDEX);
        assert.deepEqual(trained, example.modelTurns.flatMap((t) => t.trainedIds));
        assert.equal(trained.length, example.outputTokens);
        assert.equal(framed.ids.length - trained.length, example.inputTokens);
        for (const turn of example.modelTurns) {
          assert.equal(tokenizer.decode(turn.trainedIds, { skipSpecialTokens: true }), turn.trainedDecoded);
        }
      }
    });

    test('no template scaffolding is trained: each trained span starts with its answer', () => {
      for (const example of all) {
        const answers = example.turns.filter((t) => t.role === 'model').map((t) => t.text);
        example.modelTurns.forEach((turn, i) => {
          const answer = answers[i]!;
          assert.ok([answer, answer.trim(), answer.trimStart()].some((a) => turn.trained.startsWith(a)), JSON.stringify(turn.trained));
          assert.ok(!turn.trained.includes('<think>'), JSON.stringify(turn.trained));
        });
      }
    });

    test('plain encodes add special tokens as transformers does', () => {
      for (const example of all) assert.deepEqual(tokenizer.encode(example.turns[0]!.text), example.firstUserEncoded);
    });

    test('each token\'s bytes (computeTokens) put back together are the text, byte for byte, multi-byte characters too', () => {
      for (const text of ['What is the longest word in the world?', 'naïve café — 東京 🎉', '  two  spaces\nand a line', ...all.flatMap((e) => e.turns.map((t) => t.text))]) {
        const ids = tokenizer.encode(text, { addSpecialTokens: false });
        const bytes = Buffer.concat(ids.map((id) => tokenizer.tokenBytes(id)));
        // Qwen's tokenizer.json normalizes to NFC first: its tokens spell the composed characters.
        assert.equal(bytes.toString('utf8'), family === 'qwen3' ? text.normalize('NFC') : text, `${family}: ${JSON.stringify(text)}`);
      }
      // Special tokens are their text; an id outside the vocabulary stands for nothing.
      const special = tokenizer.eosTokenIds[0]!;
      assert.equal(Buffer.from(tokenizer.tokenBytes(special)).toString('utf8'), tokenizer.idToToken(special));
      assert.equal(tokenizer.tokenBytes(tokenizer.vocabSize + 10).length, 0);
    });

    test('validateOnly statistics count the tokens Hugging Face counts', () => {
      const dataset = parseJsonl(readFileSync(datasetJsonl, 'utf8'));
      const stats = dataStatsOf(dataset, tokenizer, 'training_dataset_uri');
      const inputs = expected.dataset.map((e) => e.inputTokens);
      const outputs = expected.dataset.map((e) => e.outputTokens);
      assert.equal(stats.inputTokens.sum, inputs.reduce((a, b) => a + b));
      assert.equal(stats.outputTokens.sum, outputs.reduce((a, b) => a + b));
      assert.equal(stats.inputTokens.max, Math.max(...inputs));
      assert.equal(stats.outputTokens.min, Math.min(...outputs));
      assert.equal(stats.tokenCount, stats.inputTokens.sum + stats.outputTokens.sum);
      const conversations = parseExamples(expected.conversations.map((e) => ({ contents: e.turns.map((t) => ({ role: t.role, parts: [{ text: t.text }] })), ...(e.systemInstruction ? { systemInstruction: e.systemInstruction } : {}) })));
      assert.equal(dataStatsOf(conversations, tokenizer, 'examples').outputTokens.sum, expected.conversations.reduce((n, e) => n + e.outputTokens, 0));
    });
  });
}

test('Qwen3: prompts end with the empty think block and multi-turn examples train each answer after its own prompt', async () => {
  const tokenizer = await Tokenizer.load(tokenizerDir('qwen3'));
  const { dataset } = reference('qwen3');
  for (const example of dataset) {
    for (const turn of example.modelTurns) assert.ok(turn.prompt.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n'));
  }
  // "My name is Ada." / "What is my name?": the template drops the think block of answered turns, so each
  // answer is its own sequence, framed exactly as generation frames its prompt.
  const multi = dataset.find((e) => e.turns.length === 4)!;
  assert.equal(multi.sequences.length, 2);
  const framed = frameExample(tokenizer, chooseFraming(tokenizer), exampleOf(multi));
  assert.deepEqual(framed.starts, [multi.modelTurns[0]!.promptIds.length + multi.modelTurns[0]!.trainedIds.length]);
});
