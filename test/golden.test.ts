// stories260K's greedy continuation of BOS, 200 tokens, must equal test/golden-greedy.txt byte for
// byte: through the engine's generate() and through the CLI with stdout piped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { generate, streamGenerate } from '../src/engine/generate/generate.js';
import { goldenGreedyFile, loadStories, runCli } from './helpers/engine.js';

const golden = readFileSync(goldenGreedyFile);

test('generate(): greedy from BOS for 200 tokens equals golden-greedy.txt', async () => {
  const { transformer, tokenizer } = await loadStories();
  const prompt = tokenizer.encode('');
  assert.deepEqual(prompt, [tokenizer.bosTokenId], 'an empty prompt is just BOS');
  const result = await generate(transformer, tokenizer, prompt, { temperature: 0, maxOutputTokens: 200 });
  const [candidate] = result.candidates;
  assert.equal(result.candidates.length, 1);
  assert.equal(candidate.tokenIds.length, 200);
  assert.equal(candidate.finishReason, 'MAX_TOKENS');
  assert.equal(result.candidatesTokenCount, 200);
  assert.equal(result.promptTokenCount, 1);
  const text = Buffer.from(candidate.text, 'utf8');
  assert.equal(text.length, golden.length, 'byte length');
  assert.ok(text.equals(golden), `text differs from golden-greedy.txt:\n${candidate.text}`);
  // The ids decode to the same text.
  assert.equal(tokenizer.decode([...prompt, ...candidate.tokenIds], { skipSpecialTokens: true }).trimStart(), golden.toString('utf8').trimStart());

  // Streaming yields the same bytes.
  let streamed = '';
  for await (const delta of streamGenerate(transformer, tokenizer, prompt, { maxOutputTokens: 200 })) streamed += delta.text;
  assert.ok(Buffer.from(streamed, 'utf8').equals(golden), 'streamed deltas equal golden-greedy.txt');
});

test('attune generate --prompt "" --temperature 0 --max-output-tokens 200 prints golden-greedy.txt exactly', async () => {
  const { code, stdout, stderr } = await runCli(['generate', '--prompt', '', '--temperature', '0', '--max-output-tokens', '200']);
  assert.equal(code, 0, stderr);
  assert.equal(stdout.length, golden.length, 'byte length (no trailing newline when piped)');
  assert.ok(stdout.equals(golden), `stdout differs from golden-greedy.txt:\n${stdout.toString('utf8')}`);
});
