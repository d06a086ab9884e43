// Tuned models other projects shared with this one (by its email or number, or with everyone): usable here,
// never listed among this project's own jobs. Each answers a prompt in place, through :generateContent.
import { useState } from 'preact/hooks';
import { chunkText, generate, tunedModelPath } from '../api/gemini';
import { listSharedWithMe, type SharedModel } from '../api/sharing';
import { useAsync } from '../hooks/use-async';
import { useSettings } from '../settings';
import { ErrorBanner } from './error-banner';

function AskShared({ model }: { model: SharedModel }) {
  const [prompt, setPrompt] = useState('');
  const [answer, setAnswer] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const id = model.name.replace(/^tunedModels\//, '');
  const ask = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const reply = await generate(tunedModelPath(id), [{ role: 'user', parts: [{ text: prompt }] }], { temperature: 0, maxOutputTokens: 64 });
      setAnswer(chunkText(reply));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="ask-shared" onSubmit={ask}>
      <label for={`ask-${id}`} class="visually-hidden">
        Prompt for {model.displayName || id}
      </label>
      <input id={`ask-${id}`} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} placeholder="Ask it…" />
      <button type="submit" disabled={busy || !prompt}>
        Ask
      </button>
      {answer !== undefined && (
        <output data-testid={`answer-${id}`}>{answer}</output>
      )}
      <ErrorBanner error={error} />
    </form>
  );
}

export function SharedModels() {
  const settings = useSettings();
  const shared = useAsync((signal) => listSharedWithMe(signal), [settings]);
  // A failure here is the list's own (no key, server away), which the page already shows: say nothing twice.
  if (shared.error || !shared.data?.length) return null;
  return (
    <section class="panel" aria-labelledby="shared-title" data-testid="shared-models">
      <h2 id="shared-title">Shared with this project</h2>
      <ul class="plain shared-list">
        {shared.data.map((m) => (
          <li key={m.name}>
            <strong>{m.displayName || m.name}</strong> <span class="muted">{m.name}{m.via === 'everyone' ? ', shared with everyone' : ''}</span>
            <AskShared model={m} />
          </li>
        ))}
      </ul>
    </section>
  );
}
