// GGUF export of the other families and of byte-level BPE vocabularies, checked in real llama.cpp: small
// random Qwen 2 (q/k/v biases, untied head), Qwen 3 (q/k norms, explicit head_dim) and Llama 3 (llama3 rope
// scaling, no permutation shortcut) models with a byte-level BPE tokenizer (Qwen's and Llama 3's split
// rules), each with a random LoRA adapter. llama.cpp must tokenize prompts as Attune does and continue them
// greedily with the same token ids, with and without the adapter.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadBaseModel, type BaseModel } from '../src/engine/base-model.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { saveAdapter } from '../src/engine/lora/peft.js';
import { writeSafetensors } from '../src/engine/io/safetensors.js';
import { manualSeed, noGrad, randn, type Tensor } from '../src/engine/tensor/index.js';
import { writeAdapterGguf, writeBaseGguf } from '../src/engine/export/gguf/convert.js';
import { assertSameGreedy, attuneGreedySteps, openLlamaSession, type GreedyStep } from './helpers/llama.js';

const splitRules = {
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  llama3: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

/** GPT-2's reversible byte → printable character map, which byte-level BPE vocabularies are written in. */
function byteChars(): string[] {
  const printable = [...range(33, 126), ...range(161, 172), ...range(174, 255)];
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  return chars;
}
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

const corpus = 'one two three four five six seven eight nine ten twenty thirty forty ninety hundred thousand Once upon a time there was a little girl 1212 1212 2020 2020';

/** A byte-level BPE tokenizer.json with merges learned from a small corpus, and tokenizer_config.json. */
function writeBpeTokenizer(dir: string, rule: string): number {
  const chars = byteChars();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => (vocab[c] = b));
  let words = corpus.split(' ').map((w, i) => [...Buffer.from(i === 0 ? w : ` ${w}`)].map((b) => chars[b]!));
  const merges: string[] = [];
  for (let m = 0; m < 60; m++) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) counts.set(`${w[i]} ${w[i + 1]}`, (counts.get(`${w[i]} ${w[i + 1]}`) ?? 0) + 1);
    const best = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0];
    if (!best) break;
    const [left, right] = best[0].split(' ') as [string, string];
    merges.push(best[0]);
    vocab[left + right] = Object.keys(vocab).length;
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (w[i] === left && w[i + 1] === right) out.push(left + right), i++;
        else out.push(w[i]!);
      }
      return out;
    });
  }
  const eos = Object.keys(vocab).length;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizer = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: eos, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: rule }, behavior: 'Isolated', invert: false }, byteLevel] },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>', bos_token: null, add_bos_token: false, add_eos_token: false }));
  return eos + 1;
}

interface Family {
  name: string;
  rule: keyof typeof splitRules;
  config: Record<string, unknown>;
}

const families: Family[] = [
  { name: 'qwen2', rule: 'qwen2', config: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false, rope_theta: 1e6 } },
  { name: 'qwen3', rule: 'qwen2', config: { architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, tie_word_embeddings: true, rope_theta: 1e6 } },
  {
    name: 'llama3', rule: 'llama3',
    config: {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false, rope_theta: 5e5,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    },
  },
];

/** A random model of the family, with weights large enough that greedy choices are not near ties. */
function writeModel(dir: string, family: Family, vocabSize: number): void {
  const hidden = 64;
  const heads = family.config.num_attention_heads as number;
  const kvHeads = family.config.num_key_value_heads as number;
  const headDim = (family.config.head_dim as number | undefined) ?? hidden / heads;
  const config = { ...family.config, hidden_size: hidden, intermediate_size: 128, num_hidden_layers: 2, vocab_size: vocabSize, max_position_embeddings: 256, rms_norm_eps: 1e-6, eos_token_id: vocabSize - 1, hidden_act: 'silu', torch_dtype: 'float32' };
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const w = (std: number, ...shape: number[]): Tensor => randn(shape).mul(std);
  const norm = (n: number) => randn([n]).mul(0.1).add(1);
  const tensors = new Map<string, Tensor>([['model.embed_tokens.weight', w(0.5, vocabSize, hidden)], ['model.norm.weight', norm(hidden)]]);
  if (!family.config.tie_word_embeddings) tensors.set('lm_head.weight', w(0.3, vocabSize, hidden));
  for (let i = 0; i < 2; i++) {
    const p = `model.layers.${i}`;
    tensors.set(`${p}.input_layernorm.weight`, norm(hidden));
    tensors.set(`${p}.post_attention_layernorm.weight`, norm(hidden));
    tensors.set(`${p}.self_attn.q_proj.weight`, w(0.2, heads * headDim, hidden));
    tensors.set(`${p}.self_attn.k_proj.weight`, w(0.2, kvHeads * headDim, hidden));
    tensors.set(`${p}.self_attn.v_proj.weight`, w(0.2, kvHeads * headDim, hidden));
    tensors.set(`${p}.self_attn.o_proj.weight`, w(0.2, hidden, heads * headDim));
    tensors.set(`${p}.mlp.gate_proj.weight`, w(0.2, 128, hidden));
    tensors.set(`${p}.mlp.up_proj.weight`, w(0.2, 128, hidden));
    tensors.set(`${p}.mlp.down_proj.weight`, w(0.2, hidden, 128));
    if (family.name === 'qwen2') {
      tensors.set(`${p}.self_attn.q_proj.bias`, w(0.2, heads * headDim));
      tensors.set(`${p}.self_attn.k_proj.bias`, w(0.2, kvHeads * headDim));
      tensors.set(`${p}.self_attn.v_proj.bias`, w(0.2, kvHeads * headDim));
    }
    if (family.name === 'qwen3') {
      tensors.set(`${p}.self_attn.q_norm.weight`, norm(headDim));
      tensors.set(`${p}.self_attn.k_norm.weight`, norm(headDim));
    }
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
}

// Digits split one by one (Qwen) or in threes (Llama 3), so the split rule must be llama.cpp's matching one.
const prompts = ['one two three', 'Once upon a time', ' ninety  nine!\n', '1212 apples in 2020', 'naïve café'];

function attuneContinuations(base: BaseModel): { ids: number[]; steps: GreedyStep[] }[] {
  return prompts.map((prompt) => {
    const ids = base.tokenizer.encode(prompt);
    return { ids, steps: attuneGreedySteps(base.transformer, ids, 10, base.tokenizer.eosTokenIds) };
  });
}

describe('GGUF export of Qwen 2, Qwen 3 and Llama 3 with byte-level BPE vocabularies', { timeout: 300_000 }, () => {
  let work = '';
  before(() => {
    work = mkdtempSync(path.join(os.tmpdir(), 'attune-export-families-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const family of families) {
    test(`${family.name}: llama.cpp tokenizes and continues as Attune does, base and base + LoRA`, async () => {
      const dir = path.join(work, family.name);
      mkdirSync(dir);
      manualSeed(7);
      writeModel(dir, family, writeBpeTokenizer(dir, splitRules[family.rule]));
      const base = await loadBaseModel(dir);
      const adapterDir = path.join(work, `${family.name}-adapter`);
      const adapter = LoraAdapter.create(base.transformer, loraConfig({ rank: 4 }));
      noGrad(() => {
        for (const { b } of adapter.weights.values()) b.copy_(randn(b.shape).mul(0.3));
      });
      saveAdapter(adapterDir, adapter, dir);

      await writeBaseGguf(dir, path.join(dir, 'base.gguf'));
      writeAdapterGguf(adapterDir, dir, path.join(dir, 'adapter.gguf'));
      const expectedBase = attuneContinuations(base);
      adapter.attach(base.transformer);
      const expectedTuned = attuneContinuations(base);
      LoraAdapter.detach(base.transformer);
      adapter.dispose();
      assert.notDeepEqual(expectedTuned.map((e) => e.steps.map((s) => s.id)), expectedBase.map((e) => e.steps.map((s) => s.id)), 'the adapter changes the answers');

      let compared = 0;
      let total = 0;
      for (const [lora, expected] of [[undefined, expectedBase], [path.join(dir, 'adapter.gguf'), expectedTuned]] as const) {
        const session = await openLlamaSession(path.join(dir, 'base.gguf'), lora);
        try {
          for (const [i, prompt] of prompts.entries()) {
            const ids = await session.tokenize(prompt);
            assert.deepEqual(ids, expected[i]!.ids, `tokens of ${JSON.stringify(prompt)}`);
            compared += assertSameGreedy(await session.continueIds(ids, 10), expected[i]!.steps, `${lora ? 'tuned' : 'base'} continuation of ${JSON.stringify(prompt)}`);
            total += expected[i]!.steps.length;
          }
        } finally {
          await session.close();
        }
      }
      assert.ok(compared >= total * 0.75, `only ${compared} of ${total} greedy ids were clear enough to compare`);
    });
  }
});
