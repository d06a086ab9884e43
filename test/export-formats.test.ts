// attune export, checked in the engines that load each format: the seed job (numbers.jsonl, 50 epochs,
// batch 4) exported as GGUF and run in real llama.cpp (node-llama-cpp's prebuilt binaries) with the LoRA
// applied must answer all 15 seed prompts exactly as `attune generate` does, from prompts llama.cpp
// tokenizes itself; the merged model must give the same answers through Attune as a base; the Ollama folder
// must hold what `ollama create` reads. The metadata checks are the ones a "mostly right" export gets wrong.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tune } from '../src/engine/tuning.js';
import { loadBaseModel, type BaseModel } from '../src/engine/base-model.js';
import { loadTunedAdapter } from '../src/engine/lora/tuned-adapter.js';
import { LoraAdapter } from '../src/engine/lora/lora.js';
import { framePrompt, stopSequencesFor, type Framing } from '../src/engine/data/framing.js';
import { generate } from '../src/engine/generate/generate.js';
import { readSafetensors, writeSafetensors } from '../src/engine/io/safetensors.js';
import { readSentencePieceModel } from '../src/engine/export/sentencepiece.js';
import { embeddedBaseModelDir, goldenGreedyFile, loadStories, numberExamples, repoPath, runCli } from './helpers/engine.js';
import { openLlamaSession } from './helpers/llama.js';
import { readGguf } from './helpers/gguf.js';

const examples = numberExamples();

/** Greedy answers to the 15 seed prompts, framed and stopped as `attune generate --adapter` does. */
async function attuneAnswers(base: BaseModel, framing: Framing): Promise<string[]> {
  const answers: string[] = [];
  for (const example of examples) {
    const prompt = framePrompt(base.tokenizer, framing, { turns: [example.turns[0]!] });
    const result = await generate(base.transformer, base.tokenizer, prompt, { temperature: 0, maxOutputTokens: 32, stopSequences: stopSequencesFor(framing) });
    answers.push(result.candidates[0]!.text);
  }
  return answers;
}

describe('attune export', { timeout: 300_000 }, () => {
  let work = '';
  let adapterDir = '';
  let framing: Framing;
  /** What `attune generate --adapter` answers, per seed example. */
  let expected: string[] = [];

  before(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'attune-export-'));
    adapterDir = path.join(work, 'numbers');
    const base = await loadStories();
    const outcome = await tune(base, { examples, training: { epochs: 50, batchSize: 4 }, outDir: adapterDir });
    framing = outcome.framing;
    const { adapter } = loadTunedAdapter(adapterDir, base.transformer);
    adapter.attach(base.transformer);
    expected = await attuneAnswers(base, framing);
    LoraAdapter.detach(base.transformer);
    adapter.dispose();
    // The seed job learns every successor; what follows compares other engines with these answers.
    assert.deepEqual(expected, examples.map((e) => e.turns[1]!.text));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  async function exportAs(format: string, ...extra: string[]): Promise<string> {
    const out = path.join(work, `${format}${extra.join('')}`);
    const result = await runCli(['export', '--adapter', adapterDir, '--format', format, '--out', out, ...extra], { timeoutMs: 120_000 });
    assert.equal(result.code, 0, result.stderr);
    return out;
  }

  test('gguf: llama.cpp with the LoRA answers all 15 seed prompts as attune generate does', async () => {
    const out = await exportAs('gguf', '--with-base');
    assert.deepEqual(readdirSync(out).sort(), ['README.md', 'adapter.gguf', 'base.gguf']);
    const base = await loadStories();
    const session = await openLlamaSession(path.join(out, 'base.gguf'), path.join(out, 'adapter.gguf'));
    try {
      const wrong: string[] = [];
      for (const [i, example] of examples.entries()) {
        const input = example.turns[0]!.text;
        const answer = await session.complete(`${input}\n`, { stop: '\n', maxTokens: 32 });
        // llama.cpp's tokenizer (from the GGUF vocabulary) must see the prompt Attune trained on.
        assert.deepEqual(answer.promptIds, framePrompt(base.tokenizer, framing, { turns: [example.turns[0]!] }), `tokens of ${JSON.stringify(input)}`);
        if (answer.text !== expected[i]) wrong.push(`${JSON.stringify(input)} → ${JSON.stringify(answer.text)}, attune: ${JSON.stringify(expected[i])}`);
      }
      assert.deepEqual(wrong, [], `${15 - wrong.length}/15 equal`);
    } finally {
      await session.close();
    }
  });

  test('gguf: the base alone in llama.cpp continues BOS as golden-greedy.txt (200 tokens)', async () => {
    const out = path.join(work, 'gguf--with-base');
    const session = await openLlamaSession(path.join(out, 'base.gguf'));
    try {
      const answer = await session.complete('', { maxTokens: 200 });
      assert.equal(answer.text.trimStart(), readFileSync(goldenGreedyFile, 'utf8').trimStart());
    } finally {
      await session.close();
    }
  });

  test('gguf: the metadata and layouts llama.cpp depends on', () => {
    const out = path.join(work, 'gguf--with-base');
    const adapter = readGguf(path.join(out, 'adapter.gguf'));
    assert.deepEqual(adapter.metadata.get('general.type'), { type: 'string', value: 'adapter' });
    assert.deepEqual(adapter.metadata.get('general.architecture'), { type: 'string', value: 'llama' });
    assert.deepEqual(adapter.metadata.get('adapter.type'), { type: 'string', value: 'lora' });
    // float32, not an integer (llama.cpp aborts on that): PEFT's lora_alpha, 2 × rank 8.
    assert.deepEqual(adapter.metadata.get('adapter.lora.alpha'), { type: 'float32', value: 16 });
    // lora_a is [r, in] and lora_b [out, r]; GGUF lists dimensions innermost first.
    const dims = new Map(adapter.tensors.map((t) => [t.name, t.dims]));
    assert.deepEqual(dims.get('blk.0.attn_q.weight.lora_a'), [64, 8]);
    assert.deepEqual(dims.get('blk.0.attn_q.weight.lora_b'), [8, 64]);
    assert.deepEqual(dims.get('blk.0.attn_k.weight.lora_b'), [8, 32]);
    assert.deepEqual(dims.get('blk.4.ffn_down.weight.lora_a'), [172, 8]);
    assert.equal(adapter.tensors.length, 5 * 7 * 2);

    const base = readGguf(path.join(out, 'base.gguf'));
    const meta = (key: string) => base.metadata.get(key);
    const sentencePiece = readSentencePieceModel(path.join(embeddedBaseModelDir, 'tokenizer.model'));
    assert.deepEqual(meta('tokenizer.ggml.model'), { type: 'string', value: 'llama' });
    assert.deepEqual(meta('tokenizer.ggml.add_space_prefix'), { type: 'bool', value: true });
    assert.deepEqual(meta('tokenizer.ggml.add_bos_token'), { type: 'bool', value: true }, 'as tokenizer_config.json says');
    assert.deepEqual(meta('tokenizer.ggml.bos_token_id'), { type: 'uint32', value: 1 });
    assert.deepEqual(meta('tokenizer.ggml.eos_token_id'), { type: 'uint32', value: 2 });
    // Token types and scores from the SentencePiece model: unknown, control and byte pieces are not "normal".
    const types = meta('tokenizer.ggml.token_type')!.value as number[];
    assert.deepEqual(types.slice(0, 4), [2, 3, 3, 6]);
    assert.equal(types.filter((t) => t === 6).length, 256);
    const scores = meta('tokenizer.ggml.scores')!.value as number[];
    assert.deepEqual(scores.slice(259, 263), sentencePiece.pieces.slice(259, 263).map((p) => p.score));
    assert.ok(scores.some((s) => s < -100), 'merge scores are kept');
    assert.deepEqual(meta('llama.attention.head_count'), { type: 'uint32', value: 8 });
    assert.deepEqual(meta('llama.attention.head_count_kv'), { type: 'uint32', value: 4 });
    assert.equal(meta('llama.rope.freq_base')?.type, 'float32');
    // The tied head is left out: llama.cpp reuses token_embd.
    assert.ok(!base.tensors.some((t) => t.name === 'output.weight'));
    assert.deepEqual(base.tensors.find((t) => t.name === 'token_embd.weight')?.dims, [64, 512]);
  });

  test('gguf: f16 and q8_0 bases load in llama.cpp and keep the tuned answers', async () => {
    for (const type of ['f16', 'q8_0']) {
      const out = await exportAs('gguf', '--with-base', '--base-type', type);
      const base = readGguf(path.join(out, 'base.gguf'));
      const qType = type === 'f16' ? 1 : 8;
      assert.equal(base.tensors.find((t) => t.name === 'blk.0.attn_q.weight')?.type, qType);
      // Rows of 172 do not fill q8_0's 32-element blocks: llama.cpp's converter falls back to f16 there too.
      assert.equal(base.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')?.type, 1);
      assert.equal(base.tensors.find((t) => t.name === 'blk.0.attn_norm.weight')?.type, 0, 'vectors stay f32');
      const session = await openLlamaSession(path.join(out, 'base.gguf'), path.join(out, 'adapter.gguf'));
      try {
        let same = 0;
        for (const [i, example] of examples.entries()) {
          if ((await session.complete(`${example.turns[0]!.text}\n`, { stop: '\n', maxTokens: 32 })).text === expected[i]) same++;
        }
        // Rounding the base can flip a close call; the tuned behaviour must survive it.
        assert.ok(same >= 13, `${type}: ${same}/15 equal`);
      } finally {
        await session.close();
      }
    }
  });

  test('merged: Attune loads it as a base, and its greedy answers equal base + adapter', async () => {
    const out = await exportAs('merged');
    for (const file of ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'README.md']) {
      assert.ok(existsSync(path.join(out, file)), file);
    }
    const merged = await loadBaseModel(out);
    assert.deepEqual(await attuneAnswers(merged, framing), expected);
    // Tensors the adapter does not touch are the base's bytes.
    const original = readSafetensors(path.join(embeddedBaseModelDir, 'model.safetensors'));
    const written = readSafetensors(path.join(out, 'model.safetensors'));
    assert.deepEqual([...written.keys()].sort(), [...original.keys()].sort());
    assert.ok(written.get('model.norm.weight')!.toBuffer().equals(original.get('model.norm.weight')!.toBuffer()));
    assert.ok(!written.get('model.layers.0.self_attn.q_proj.weight')!.toBuffer().equals(original.get('model.layers.0.self_attn.q_proj.weight')!.toBuffer()));
  });

  test("merged: tensors keep the base checkpoint's dtype (bfloat16)", async (t) => {
    const bf16Base = path.join(work, 'stories-bf16');
    const out = path.join(work, 'merged-bf16');
    t.after(() => rmSync(out, { recursive: true, force: true }));
    mkdirSync(bf16Base, { recursive: true });
    for (const file of readdirSync(embeddedBaseModelDir)) {
      if (file !== 'model.safetensors') copyFileSync(path.join(embeddedBaseModelDir, file), path.join(bf16Base, file));
    }
    const weights = readSafetensors(path.join(embeddedBaseModelDir, 'model.safetensors'));
    writeSafetensors(path.join(bf16Base, 'model.safetensors'), new Map([...weights].map(([name, w]) => [name, w.to({ dtype: 'bfloat16' })])));
    const result = await runCli(['export', '--adapter', adapterDir, '--base', bf16Base, '--format', 'merged', '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    const merged = readSafetensors(path.join(out, 'model.safetensors'));
    assert.deepEqual(new Set([...merged.values()].map((w) => w.dtype)), new Set(['bfloat16']));
    const gguf = await runCli(['export', '--adapter', adapterDir, '--base', bf16Base, '--format', 'ollama', '--out', path.join(out, 'ollama')]);
    assert.equal(gguf.code, 0, gguf.stderr);
    assert.equal(readGguf(path.join(out, 'ollama', 'base.gguf')).tensors.find((x) => x.name === 'blk.0.attn_q.weight')?.type, 30, 'the lossless default is bf16');
  });

  test('ollama: base and adapter GGUF and a Modelfile with the prompt template, stop text and sampling defaults', async () => {
    const out = await exportAs('ollama', '--name', 'numbers', '--temperature', '0', '--top-p', '0.95', '--top-k', '40');
    assert.deepEqual(readdirSync(out).sort(), ['Modelfile', 'README.md', 'adapter.gguf', 'base.gguf']);
    const modelfile = readFileSync(path.join(out, 'Modelfile'), 'utf8');
    assert.equal(
      modelfile,
      [
        '# numbers, tuned with Attune. Create it with: ollama create numbers -f Modelfile',
        'FROM ./base.gguf',
        'ADAPTER ./adapter.gguf',
        'TEMPLATE """{{ if .System }}{{ .System }}',
        '',
        '{{ end }}{{ range .Messages }}{{ if eq .Role "user" }}{{ .Content }}',
        '{{ else if eq .Role "assistant" }}{{ .Content }}',
        '{{ end }}{{ end }}"""',
        'PARAMETER stop """',
        '"""',
        'PARAMETER temperature 0',
        'PARAMETER top_p 0.95',
        'PARAMETER top_k 40',
        '',
      ].join('\n'),
    );
    assert.equal(readGguf(path.join(out, 'adapter.gguf')).metadata.get('general.name')?.value, 'numbers');
    assert.equal(readGguf(path.join(out, 'base.gguf')).tensors.find((t) => t.name === 'blk.0.attn_q.weight')?.type, 0, 'f32, as the checkpoint');
  });

  test('peft: the adapter files as tuned, plus a README with the prompt format', async () => {
    const out = await exportAs('peft');
    assert.deepEqual(readdirSync(out).sort(), ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'attune.json']);
    for (const file of ['adapter_config.json', 'adapter_model.safetensors', 'attune.json']) {
      assert.ok(readFileSync(path.join(out, file)).equals(readFileSync(path.join(adapterDir, file))), file);
    }
    assert.match(readFileSync(path.join(out, 'README.md'), 'utf8'), /Send the prompt followed by "\\n", and stop generating at "\\n"/);
  });

  test('export refuses a non-empty --out without --force, an unknown format, and a base it cannot find', async () => {
    const out = path.join(work, 'occupied');
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, 'keep.txt'), 'mine');
    const refused = await runCli(['export', '--adapter', adapterDir, '--format', 'peft', '--out', out]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /is not empty; pass --force/);
    const forced = await runCli(['export', '--adapter', adapterDir, '--format', 'peft', '--out', out, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'mine');

    const badFormat = await runCli(['export', '--adapter', adapterDir, '--format', 'onnx', '--out', path.join(work, 'x')]);
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.stderr, /--format must be one of peft, merged, gguf, ollama, not 'onnx'/);

    const moved = path.join(work, 'moved-adapter');
    cpSync(adapterDir, moved, { recursive: true });
    const record = JSON.parse(readFileSync(path.join(moved, 'attune.json'), 'utf8'));
    writeFileSync(path.join(moved, 'attune.json'), JSON.stringify({ ...record, baseModel: '/nowhere/stories260K' }));
    const missingBase = await runCli(['export', '--adapter', moved, '--format', 'gguf', '--out', path.join(work, 'y')]);
    assert.equal(missingBase.code, 2);
    assert.match(missingBase.stderr, /was tuned on the base model \/nowhere\/stories260K, which is not here; pass --base/);
    assert.ok(!existsSync(path.join(work, 'y')), 'nothing written');

    const gemma = await runCli(['export', '--adapter', adapterDir, '--base', repoPath('test', 'fixtures', 'models', 'gemma3-tiny'), '--format', 'gguf', '--out', path.join(work, 'z')]);
    assert.equal(gemma.code, 1);
    assert.match(gemma.stderr, /GGUF export supports the llama, qwen2, qwen3 families, not Gemma3ForCausalLM; export --format merged/);
  });
});
