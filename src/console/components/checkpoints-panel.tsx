// A job's checkpoints (Vertex tunedModel.checkpoints): the adapter as it was at the end of each epoch (or of
// evenly spread ones), each on an endpoint of its own. Each row tests its checkpoint with one prompt (greedy
// generateContent on that endpoint), downloads it as PEFT files, or makes it the model's default (what
// tunedModels/{id} and the job's endpoint serve).
import { useState } from 'preact/hooks';
import { downloadExport } from '../api/exports';
import { generateOnEndpoint, setDefaultCheckpoint, type TunedModelCheckpoint, type TuningJob } from '../api/vertex';
import { ErrorBanner } from './error-banner';

export function CheckpointsPanel({ id, job, onChanged }: { id: string; job: TuningJob; onChanged: () => void }) {
  const checkpoints = job.tunedModel?.checkpoints ?? [];
  const [error, setError] = useState<unknown>();
  if (checkpoints.length === 0) return null;
  const makeDefault = async (checkpoint: TunedModelCheckpoint) => {
    setError(undefined);
    try {
      await setDefaultCheckpoint(job.tunedModel!.model!, checkpoint.checkpointId);
      onChanged();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section class="panel" aria-labelledby="checkpoints-title" data-testid="checkpoints">
      <h2 id="checkpoints-title">Checkpoints</h2>
      <p class="muted small">Each checkpoint is the adapter as it was at that step, served on its own endpoint. The default is what the tuned model serves.</p>
      <ol class="plain checkpoint-list">
        {checkpoints.map((checkpoint) => (
          <CheckpointRow
            key={checkpoint.checkpointId}
            id={id}
            checkpoint={checkpoint}
            isDefault={checkpoint.endpoint === job.tunedModel?.endpoint}
            onDefault={() => makeDefault(checkpoint)}
            onError={setError}
          />
        ))}
      </ol>
      <ErrorBanner error={error} />
    </section>
  );
}

function CheckpointRow(props: { id: string; checkpoint: TunedModelCheckpoint; isDefault: boolean; onDefault: () => void; onError: (e: unknown) => void }) {
  const { id, checkpoint, isDefault } = props;
  const [prompt, setPrompt] = useState('');
  const [answer, setAnswer] = useState<string>();
  const [busy, setBusy] = useState<'test' | 'download'>();
  const [error, setError] = useState<unknown>();
  const label = `checkpoint ${checkpoint.checkpointId}`;
  const run = async (what: 'test' | 'download', action: () => Promise<void>) => {
    setBusy(what);
    setError(undefined);
    try {
      await action();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(undefined);
    }
  };
  const test = (event: Event) => {
    event.preventDefault();
    if (!prompt.trim()) return;
    void run('test', async () => {
      const reply = await generateOnEndpoint(checkpoint.endpoint, prompt);
      setAnswer((reply.candidates?.[0]?.content?.parts ?? []).map((p) => p.text ?? '').join(''));
    });
  };
  return (
    <li class="checkpoint" data-checkpoint={checkpoint.checkpointId}>
      <div class="checkpoint-head">
        <strong>Checkpoint {checkpoint.checkpointId}</strong>
        <span class="muted">
          epoch {checkpoint.epoch ?? 0}, step {checkpoint.step ?? 0}
        </span>
        {isDefault ? (
          <span class="badge" data-testid="default-checkpoint">default</span>
        ) : (
          <button type="button" class="link" onClick={props.onDefault} aria-label={`Make ${label} the default`}>
            Make default
          </button>
        )}
        <button type="button" onClick={() => run('download', () => downloadExport(id, { format: 'peft', checkpoint: checkpoint.checkpointId }))} disabled={busy !== undefined} aria-label={`Download ${label} (PEFT)`}>
          Download
        </button>
      </div>
      <form class="checkpoint-test" onSubmit={test}>
        <input type="text" value={prompt} placeholder="A prompt for this checkpoint" aria-label={`Prompt for ${label}`} onInput={(e) => setPrompt((e.target as HTMLInputElement).value)} />
        <button type="submit" disabled={busy !== undefined || !prompt.trim()} aria-label={`Test ${label}`}>
          {busy === 'test' ? 'Asking…' : 'Test'}
        </button>
      </form>
      {answer !== undefined && (
        <p class="checkpoint-answer" aria-live="polite" data-testid={`answer-${checkpoint.checkpointId}`}>
          {answer || <span class="muted">(an empty answer)</span>}
        </p>
      )}
      <ErrorBanner error={error} />
    </li>
  );
}
