// Chat with a tuned model and its base model side by side: one prompt goes to both, each keeps its own
// history, answers stream in, and each shows its token counts. Sampling starts greedy (temperature 0, as
// `attune generate` and the README do); a model tuned on single-turn examples starts in single-turn mode,
// where only the new prompt is sent. The prompt box comes first on a narrow screen.
import { useEffect, useState } from 'preact/hooks';
import { baseModelPath, getBaseModel, getTunedModel, tunedModelPath, type GenerationConfig } from '../api/gemini';
import { baseModelOf, getJob, jobId, listJobs } from '../api/vertex';
import { ErrorBanner } from '../components/error-banner';
import { SamplingControls } from '../components/sampling-controls';
import { Transcript } from '../components/transcript';
import { useAsync } from '../hooks/use-async';
import { promptContents, useConversation } from '../hooks/use-conversation';
import { useTokenCount } from '../hooks/use-token-count';
import { shortModelName } from '../lib/format';
import { hasAdapter, tunedOnSingleTurns } from '../lib/job-state';
import { Link, navigate } from '../router';
import { useSettings } from '../settings';

/** Short answers keep a side-by-side comparison readable; the user can raise it. */
const defaultMaxOutputTokens = 64;
/** Greedy, so an answer is the one `attune generate` gives. */
const defaultTemperature = 0;

export function TestPage({ id }: { id?: string }) {
  const settings = useSettings();
  const ready = useAsync((signal) => listJobs({ pageSize: 50, filter: 'state="JOB_STATE_SUCCEEDED"' }, signal), [settings]);
  const info = useAsync(
    async (signal) => {
      if (!id) return undefined;
      const job = await getJob(id, signal);
      const [tuned, base] = await Promise.all([
        hasAdapter(job) ? getTunedModel(id) : undefined,
        baseModelOf(job) ? getBaseModel(baseModelPath(baseModelOf(job)!)).catch(() => undefined) : undefined,
      ]);
      return { job, tuned, base };
    },
    [id, settings],
  );
  const [config, setConfig] = useState<GenerationConfig>({ temperature: defaultTemperature, maxOutputTokens: defaultMaxOutputTokens });
  const [stream, setStream] = useState(true);
  const [prompt, setPrompt] = useState('');
  const [systemInstruction, setSystemInstruction] = useState('');
  // Undefined until the user chooses: then it follows the tuning data (single-turn examples → single turn).
  const [chosenSingleTurn, setSingleTurn] = useState<boolean>();
  const job = info.data?.job;
  const testable = !!job && hasAdapter(job);
  const singleTurn = chosenSingleTurn ?? (job ? tunedOnSingleTurns(job) : true);
  const tuned = useConversation(testable ? tunedModelPath(id!) : undefined);
  const base = useConversation(testable && job.baseModel ? baseModelPath(job.baseModel) : undefined);
  const draft = prompt.trim() ? promptContents(tuned.messages, prompt, singleTurn) : [];
  const promptTokens = useTokenCount(testable ? tunedModelPath(id!) : undefined, draft, systemInstruction);

  // The tuned model's own topP and topK once they are known (temperature stays greedy unless changed).
  useEffect(() => {
    const defaults = info.data?.tuned;
    if (defaults) setConfig((c) => ({ topP: defaults.topP, topK: defaults.topK, ...stripUndefined(c) }));
  }, [info.data?.tuned]);

  const send = (event?: Event) => {
    event?.preventDefault();
    const text = prompt.trim();
    if (!text || tuned.busy || base.busy) return;
    setPrompt('');
    const options = { config, stream, singleTurn, systemInstruction };
    void tuned.send(text, options);
    void base.send(text, options);
  };
  const turnsSent = tuned.messages.length > 0 && !singleTurn ? 'with the conversation so far' : 'for this prompt alone';
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
          <div class="test-main">
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
                <span data-testid="prompt-tokens">{promptTokens !== undefined ? `${promptTokens} tokens ${turnsSent}.` : ''}</span>
              </p>
              <label class="checkbox">
                <input type="checkbox" checked={singleTurn} onChange={(e) => setSingleTurn(e.currentTarget.checked)} aria-describedby="single-turn-hint" /> Single turn
              </label>
              <p id="single-turn-hint" class="hint">
                {singleTurn
                  ? 'Each prompt is sent alone; earlier turns stay on screen but are not sent.'
                  : 'Earlier turns are sent with each prompt, as a conversation.'}
                {job && tunedOnSingleTurns(job) ? ' This model was tuned on single-turn examples.' : ''}
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
            <div class="side-by-side">
              <Transcript testId="tuned-transcript" title="Tuned" subtitle={job.tunedModelDisplayName || id!} messages={tuned.messages} />
              <Transcript testId="base-transcript" title="Base" subtitle={shortModelName(job.baseModel)} messages={base.messages} />
            </div>
          </div>
          <SamplingControls
            config={config}
            onChange={setConfig}
            stream={stream}
            onStream={setStream}
            systemInstruction={systemInstruction}
            onSystemInstruction={setSystemInstruction}
            maxTemperature={info.data?.base?.maxTemperature}
            maxOutputTokens={info.data?.base?.outputTokenLimit}
          />
        </div>
      )}
    </section>
  );
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
