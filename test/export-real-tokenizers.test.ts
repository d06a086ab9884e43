// GGUF export with the real Qwen3 and Llama 3.1 tokenizers (151k and 128k tokens, their chat templates and
// special tokens), checked in real llama.cpp: its tokenization of each reference chat prompt must equal
// Hugging Face's ids (test/fixtures/chat), and a tiny random model of each family, with and without a random
// LoRA adapter, must continue those prompts greedily with the ids Attune generates.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadBaseModel } from '../src/engine/base-model.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { saveAdapter } from '../src/engine/lora/peft.js';
import { noGrad, randn } from '../src/engine/tensor/index.js';
import { writeAdapterGguf, writeBaseGguf } from '../src/engine/export/gguf/convert.js';
import { makeTinyModel, reference } from './helpers/real-tokenizers.js';
import { readGguf } from './helpers/gguf.js';
import { assertSameGreedy, attuneGreedySteps, openLlamaSession } from './helpers/llama.js';

const continued = 8;

describe('GGUF export with real tokenizers', { timeout: 300_000 }, () => {
  let work = '';
  before(() => {
    work = mkdtempSync(path.join(os.tmpdir(), 'attune-export-real-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const [family, pre] of [['qwen3', 'qwen2'], ['llama3_1', 'llama-bpe']] as const) {
    test(`${family}: llama.cpp tokenizes the chat prompts as Hugging Face does and continues them as Attune does`, async () => {
      const dir = makeTinyModel(family, path.join(work, family));
      const nfc = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')).normalizer?.type === 'NFC';
      const prompts = reference(family).conversations.flatMap((c) => c.modelTurns.map((t) => ({ text: t.prompt, ids: t.promptIds })));
      const base = await loadBaseModel(dir);
      const adapterDir = path.join(work, `${family}-adapter`);
      const adapter = LoraAdapter.create(base.transformer, loraConfig({ rank: 4 }));
      noGrad(() => {
        for (const { b } of adapter.weights.values()) b.copy_(randn(b.shape).mul(0.5));
      });
      saveAdapter(adapterDir, adapter, dir);
      const continuations = () => prompts.map(({ ids }) => attuneGreedySteps(base.transformer, ids, continued, base.tokenizer.eosTokenIds));
      const expectedBase = continuations();
      adapter.attach(base.transformer);
      const expectedTuned = continuations();
      LoraAdapter.detach(base.transformer);
      adapter.dispose();

      await writeBaseGguf(dir, path.join(work, `${family}.gguf`));
      writeAdapterGguf(adapterDir, dir, path.join(work, `${family}-adapter.gguf`));
      const metadata = readGguf(path.join(work, `${family}.gguf`)).metadata;
      assert.deepEqual(metadata.get('tokenizer.ggml.model'), { type: 'string', value: 'gpt2' });
      assert.deepEqual(metadata.get('tokenizer.ggml.pre'), { type: 'string', value: pre });
      assert.equal(metadata.get('tokenizer.chat_template')?.value, base.tokenizer.chatTemplate);

      let compared = 0;
      let total = 0;
      for (const [lora, expected] of [[undefined, expectedBase], [path.join(work, `${family}-adapter.gguf`), expectedTuned]] as const) {
        const session = await openLlamaSession(path.join(work, `${family}.gguf`), lora);
        try {
          for (const [i, prompt] of prompts.entries()) {
            // The rendered prompt carries its own special tokens (and Llama's <|begin_of_text|>).
            // llama.cpp's BPE tokenizers do not apply tokenizer.json's normaliser (Qwen's NFC), as with any GGUF
            // of these models, so text goes to it as that normaliser would give it.
            const ids = session.model.tokenize(nfc ? prompt.text.normalize('NFC') : prompt.text, true).map(Number);
            assert.deepEqual(ids, prompt.ids, `llama.cpp's tokens of ${JSON.stringify(prompt.text)}`);
            compared += assertSameGreedy(await session.continueIds(ids, continued), expected[i]!, `${lora ? 'tuned' : 'base'} continuation ${i}`);
            total += expected[i]!.length;
          }
        } finally {
          await session.close();
        }
      }
      assert.ok(compared >= total * 0.75, `only ${compared} of ${total} greedy ids were clear enough to compare`);
    });
  }
});
