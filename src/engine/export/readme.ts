// The README.md each export carries: what the files are, how to run them, and how prompts must be framed.
import path from 'node:path';
import type { Framing } from '../data/framing.js';
import type { ExportRequest } from './export.js';

const shown = (text: string): string => JSON.stringify(text);

function promptFormat(framing: Framing | undefined): string {
  if (!framing) return 'The adapter has no attune.json, so its prompt format is unknown.';
  if (framing.kind === 'chat-template') return "Prompts use the base model's chat template, as in training.";
  return [
    'The base model has no chat template, so training framed each example as plain text:',
    '',
    '    <BOS>[system instruction "\\n\\n"]prompt "\\n" answer ' + shown(framing.terminator),
    '',
    `Send the prompt followed by "\\n", and stop generating at ${shown(framing.terminator)}.`,
  ].join('\n');
}

export function exportReadme(request: ExportRequest & { framing?: Framing }): string {
  const { name, format, framing } = request;
  const base = path.basename(path.resolve(request.baseDir));
  const lines = [`# ${name}`, '', `A LoRA adapter tuned with Attune on ${base}, exported as ${format}.`, ''];
  if (format === 'peft') {
    lines.push(
      'Hugging Face PEFT files: `adapter_config.json` and `adapter_model.safetensors` (plus `attune.json`, which',
      'records the base model and prompt framing for Attune). Load with `PeftModel.from_pretrained(base, dir)`,',
      'vLLM `--lora-modules`, or `attune generate --adapter <dir>`.',
    );
  } else if (format === 'merged') {
    lines.push(
      'A Hugging Face model directory with the adapter merged into the weights (`model.safetensors`, in the',
      "base model's dtype). Load it with `AutoModelForCausalLM.from_pretrained(dir)`, use it as an Attune base",
      '(`attune generate --base <dir>`), or convert it with llama.cpp\'s `convert_hf_to_gguf.py`.',
    );
  } else if (format === 'gguf') {
    lines.push('`adapter.gguf` is a GGUF LoRA adapter for llama.cpp, for the base model converted to GGUF.');
    if (request.withBase) lines.push('`base.gguf` is that base model.');
    lines.push('', 'Run: `llama-server -m base.gguf --lora adapter.gguf` (or `llama-cli`).');
  } else {
    lines.push('`base.gguf` and `adapter.gguf` with a `Modelfile` for Ollama. Create and run the model:', '', `    ollama create ${name} -f Modelfile`, `    ollama run ${name}`);
  }
  lines.push('', '## Prompt format', '', promptFormat(framing), '');
  return lines.join('\n');
}
