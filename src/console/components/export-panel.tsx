// A tuned model's downloads, one per export format, each a ZIP of what `attune export` writes. Converting
// a large model takes a while, so the panel says which download is being prepared.
import { useState } from 'preact/hooks';
import { baseTypes, downloadExport, type BaseType, type ExportChoice, type ExportFormat } from '../api/exports';
import { ErrorBanner } from './error-banner';

const formats: { format: ExportFormat; label: string; description: string }[] = [
  { format: 'peft', label: 'PEFT adapter', description: 'Hugging Face PEFT files, for transformers, vLLM or Attune.' },
  { format: 'merged', label: 'Merged model', description: "A Hugging Face model with the adapter merged into the weights, in the base model's dtype." },
  { format: 'gguf', label: 'GGUF adapter', description: 'A GGUF LoRA adapter for llama.cpp.' },
  { format: 'ollama', label: 'Ollama', description: 'Base and adapter as GGUF with a Modelfile: ollama create NAME -f Modelfile.' },
];

export function ExportPanel({ id }: { id: string }) {
  const [withBase, setWithBase] = useState(false);
  const [baseType, setBaseType] = useState<BaseType | ''>('');
  const [preparing, setPreparing] = useState<ExportFormat>();
  const [error, setError] = useState<unknown>();

  const download = async (format: ExportFormat) => {
    const hasBase = format === 'ollama' || (format === 'gguf' && withBase);
    const choice: ExportChoice = { format, withBase: format === 'gguf' && withBase, baseType: hasBase && baseType ? baseType : undefined };
    setPreparing(format);
    setError(undefined);
    try {
      await downloadExport(id, choice);
    } catch (e) {
      setError(e);
    } finally {
      setPreparing(undefined);
    }
  };

  return (
    <section class="panel" aria-labelledby="export-title">
      <h2 id="export-title">Export</h2>
      <ul class="plain export-list">
        {formats.map(({ format, label, description }) => (
          <li key={format}>
            <button type="button" onClick={() => download(format)} disabled={preparing !== undefined} aria-label={`Download ${label}`}>
              {label}
            </button>
            <span>{description}</span>
          </li>
        ))}
      </ul>
      <div class="export-options">
        <label>
          <input type="checkbox" checked={withBase} onChange={(e) => setWithBase((e.target as HTMLInputElement).checked)} /> GGUF: include the base model
        </label>
        <label>
          Base model GGUF type{' '}
          <select value={baseType} onChange={(e) => setBaseType((e.target as HTMLSelectElement).value as BaseType | '')}>
            <option value="">as the checkpoint (lossless)</option>
            {baseTypes.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p aria-live="polite" class="muted">
        {preparing ? `Preparing the ${formats.find((f) => f.format === preparing)!.label} download… (a large model takes minutes to convert)` : ''}
      </p>
      <ErrorBanner error={error} />
    </section>
  );
}
