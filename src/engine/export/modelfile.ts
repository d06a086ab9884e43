// An Ollama Modelfile for a base GGUF plus a GGUF LoRA adapter: the prompt format the adapter was
// trained with, its stop text, and the tuned model's sampling defaults.
//
// The plain framing (`[system "\n\n"] user "\n" model T …`, see data/framing.ts) becomes a Go template
// over Ollama's messages; BOS comes from the GGUF's add_bos_token, as in Attune. A chat-template base
// needs no TEMPLATE: Ollama reads tokenizer.chat_template from the base GGUF and uses its matching template.
import type { Framing } from '../data/framing.js';

export interface SamplingDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
}

export interface ModelfileOptions {
  name: string;
  baseFile: string;
  adapterFile: string;
  framing?: Framing;
  sampling?: SamplingDefaults;
}

/** A Modelfile value: triple-quoted when it holds a newline or edge spaces, as Ollama's parser reads them. */
function quoted(value: string): string {
  if (value.includes('"""')) throw new Error(`a Modelfile value cannot hold """: ${JSON.stringify(value)}`);
  return /\n|^\s|\s$|"/.test(value) ? `"""${value}"""` : value;
}

export function plainTemplate(terminator: string): string {
  return (
    '{{ if .System }}{{ .System }}\n\n{{ end }}' +
    '{{ range .Messages }}' +
    `{{ if eq .Role "user" }}{{ .Content }}\n{{ else if eq .Role "assistant" }}{{ .Content }}${terminator}{{ end }}` +
    '{{ end }}'
  );
}

export function modelfile({ name, baseFile, adapterFile, framing, sampling = {} }: ModelfileOptions): string {
  const lines = [
    `# ${name}, tuned with Attune. Create it with: ollama create ${name} -f Modelfile`,
    `FROM ./${baseFile}`,
    `ADAPTER ./${adapterFile}`,
  ];
  if (framing?.kind === 'plain') {
    lines.push(`TEMPLATE ${quoted(plainTemplate(framing.terminator))}`);
    lines.push(`PARAMETER stop ${quoted(framing.terminator)}`);
  } else {
    lines.push("# The chat template is the base model's own (tokenizer.chat_template in the base GGUF), as in training.");
  }
  if (sampling.temperature !== undefined) lines.push(`PARAMETER temperature ${sampling.temperature}`);
  if (sampling.topP !== undefined) lines.push(`PARAMETER top_p ${sampling.topP}`);
  if (sampling.topK !== undefined && sampling.topK > 0) lines.push(`PARAMETER top_k ${sampling.topK}`);
  return lines.join('\n') + '\n';
}
