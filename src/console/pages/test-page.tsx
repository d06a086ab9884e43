// Chat with a tuned model and its base model side by side: one prompt goes to both, each keeps its own
// history, answers stream in, and each shows its token counts.
import { useEffect, useState } from 'preact/hooks';
import { baseModelPath, getBaseModel, getTunedModel, tunedModelPath, type GenerationConfig } from '../api/gemini';
import { getJob, jobId, listJobs } from '../api/vertex';
import { ErrorBanner } from '../components/error-banner';
import { SamplingControls } from '../components/sampling-controls';
import { Transcript } from '../components/transcript';
import { useAsync } from '../hooks/use-async';
import { historyContents, useConversation } from '../hooks/use-conversation';
import { useTokenCount } from '../hooks/use-token-count';
import { shortModelName } from '../lib/format';
import { hasAdapter } from '../lib/job-state';
import { Link, navigate } from '../router';
import { useSettings } from '../settings';

/** Short answers keep a side-by-side comparison readable; the user can raise it. */
const defaultMaxOutputTokens = 64;

export function TestPage({ id }: { id?: string }) {
  const settings = useSettings();
  const ready = useAsync((signal) => listJobs({ pageSize: 50, filter: 'state="JOB_STATE_SUCCEEDED"' }, signal), [settings]);
  const info = useAsync(
    async (signal) => {
      if (!id) return undefined;
      const job = await getJob(id, signal);
      const [tuned, base] = await Promise.all([
        hasAdapter(job) ? getTunedModel(id) : undefined,
        job.baseModel ? getBaseModel(baseModelPath(job.baseModel)).catch(() => undefined) : undefined,
      ]);
      return { job, tuned, base };
    },
    [id, settings],
  );
  const [config, setConfig] = useState<GenerationConfig>({ maxOutputTokens: defaultMaxOutputTokens });
  const [stream, setStream] = useState(true);
  const [prompt, setPrompt] = useState('');
  const job = info.data?.job;
  const testable = !!job && hasAdapter(job);
  const tuned = useConversation(testable ? tunedModelPath(id!) : undefined);
  const base = useConversation(testable && job.baseModel ? baseModelPath(job.baseModel) : undefined);
  const draft = prompt.trim() ? [...historyContents(tuned.messages), { role: 'user' as const, parts: [{ text: prompt }] }] : [];
  const promptTokens = useTokenCount(testable ? tunedModelPath(id!) : undefined, draft);

  // Start from the tuned model's own sampling defaults once they are known.
  useEffect(() => {
    const defaults = info.data?.tuned;
    if (defaults) setConfig((c) => ({ temperature: defaults.temperature, topP: defaults.topP, topK: defaults.topK, ...stripUndefined(c) }));
  }, [info.data?.tuned]);

  const send = (event?: Event) => {
    event?.preventDefault();
    const text = prompt.trim();
    if (!text || tuned.busy || base.busy) return;
    setPrompt('');
    void tuned.send(text, config, stream);
    void base.send(text, config, stream);
  };
  const choices = ready.data?.tuningJobs ?? [];

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Test {job ? job.tunedModelDisplayName || id : 'a tuned model'}
      </h1>
      <div class="filters">
        <div class="field">
          <label for="test-model">Tuned model</label>
          <select id="test-model" value={id ?? ''} onChange={(e) => navigate(`/test/${e.currentTarget.value}`)}>
            <option value="" disabled>
              Choose a tuned model
            </option>
            {choices.map((j) => (
              <option value={jobId(j.name)}>{j.tunedModelDisplayName || jobId(j.name)}</option>
            ))}
            {job && !choices.some((j) => j.name === job.name) && <option value={id}>{job.tunedModelDisplayName || id}</option>}
          </select>
        </div>
        {job && (
          <p class="muted">
            <Link href={`/jobs/${id}`}>Details of this run</Link>
          </p>
        )}
      </div>
      <ErrorBanner error={ready.error} onRetry={ready.reload} />
      <ErrorBanner error={info.error} onRetry={info.reload} />
      {ready.data && choices.length === 0 && !id && (
        <p class="empty">
          No tuned model has finished yet. <Link href="/new">Tune one</Link>.
        </p>
      )}
      {job && !testable && <p class="notice">This run has not succeeded, so it has no adapter to test.</p>}
      {testable && (
        <div class="test-layout">
          <SamplingControls
            config={config}
            onChange={setConfig}
            stream={stream}
            onStream={setStream}
            maxTemperature={info.data?.base?.maxTemperature}
            maxOutputTokens={info.data?.base?.outputTokenLimit}
          />
          <div class="test-main">
            <div class="side-by-side">
              <Transcript testId="tuned-transcript" title="Tuned" subtitle={job.tunedModelDisplayName || id!} messages={tuned.messages} />
              <Transcript testId="base-transcript" title="Base" subtitle={shortModelName(job.baseModel)} messages={base.messages} />
            </div>
            <form class="composer" onSubmit={send}>
              <label for="prompt">Prompt</label>
              <textarea
                id="prompt"
                rows={3}
                value={prompt}
                aria-describedby="prompt-hint"
                onInput={(e) => setPrompt(e.currentTarget.value)}
                onKeyDown={(e) => {
                  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) send(e);
                }}
              />
              <p id="prompt-hint" class="hint">
                Enter sends to both models; Shift+Enter adds a line.{' '}
                <span data-testid="prompt-tokens">{promptTokens !== undefined ? `${promptTokens} tokens with the conversation so far.` : ''}</span>
              </p>
              <div class="actions">
                <button
                  type="button"
                  onClick={() => {
                    tuned.clear();
                    base.clear();
                  }}
                >
                  Clear conversation
                </button>
                <button type="submit" class="primary" disabled={!prompt.trim() || tuned.busy || base.busy}>
                  Send to both
                </button>
              </div>
            </form>
          </div>
        </div>
      )}
    </section>
  );
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
