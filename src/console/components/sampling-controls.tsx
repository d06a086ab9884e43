// The system instruction, temperature, topP, topK, max output tokens and streaming for the Test page;
// every control is labelled.
import type { GenerationConfig } from '../api/gemini';

export interface SamplingControlsProps {
  config: GenerationConfig;
  onChange: (config: GenerationConfig) => void;
  stream: boolean;
  onStream: (stream: boolean) => void;
  systemInstruction: string;
  onSystemInstruction: (text: string) => void;
  maxTemperature?: number;
  maxOutputTokens?: number;
}

export function SamplingControls({ config, onChange, stream, onStream, systemInstruction, onSystemInstruction, maxTemperature = 2, maxOutputTokens = 2048 }: SamplingControlsProps) {
  const set = (field: keyof GenerationConfig, text: string) => onChange({ ...config, [field]: text === '' ? undefined : Number(text) });
  const number = (id: string, label: string, field: keyof GenerationConfig, min: number, max: number, step: number | 'any') => (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} type="number" min={min} max={max} step={step} value={config[field] ?? ''} onInput={(e) => set(field, e.currentTarget.value)} />
    </div>
  );
  return (
    <fieldset class="panel sampling">
      <legend>Sampling</legend>
      <div class="field">
        <label for="system-instruction">System instruction (optional)</label>
        <textarea id="system-instruction" rows={2} value={systemInstruction} onInput={(e) => onSystemInstruction(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for="temperature">Temperature: {config.temperature ?? 'default'}</label>
        <input id="temperature" type="range" min={0} max={maxTemperature} step={0.05} value={config.temperature ?? 0} onInput={(e) => set('temperature', e.currentTarget.value)} aria-describedby="temperature-hint" />
        <p id="temperature-hint" class="hint">
          {config.temperature === 0 ? '0: greedy, the answer attune generate gives.' : 'Above 0 the answers vary from one try to the next.'}
        </p>
      </div>
      {number('top-p', 'Top P', 'topP', 0, 1, 'any')}
      {number('top-k', 'Top K', 'topK', 1, 1000, 1)}
      {number('max-output-tokens', 'Max output tokens', 'maxOutputTokens', 1, maxOutputTokens, 1)}
      <label class="checkbox">
        <input type="checkbox" checked={stream} onChange={(e) => onStream(e.currentTarget.checked)} /> Stream the answers
      </label>
    </fieldset>
  );
}
