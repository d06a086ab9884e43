// A new tuning job: name and base model, the dataset (a JSONL file, or examples typed as a table), an
// optional validation file, hyperparameters. The dataset is checked in the browser first (errors by line,
// nothing uploaded while there are any), then uploaded and checked by the server (validateOnly), which
// answers the step count; past runs on the same base model turn that into a duration estimate.
import { useMemo, useState } from 'preact/hooks';
import { listTunableModels, type BaseModel } from '../api/gemini';
import { createJob, jobId, jobsPath, type NewTuningJob } from '../api/vertex';
import { CopyBlock } from '../components/copy-block';
import { DataStats } from '../components/data-stats';
import { DatasetProblems } from '../components/dataset-problems';
import { ErrorBanner } from '../components/error-banner';
import { ExamplesEditor } from '../components/examples-editor';
import { FileDrop } from '../components/file-drop';
import { HyperparameterInputs } from '../components/hyperparameter-inputs';
import { useAsync } from '../hooks/use-async';
import { uploadDatasets, useDatasetPreview, type DatasetText, type DatasetUris } from '../hooks/use-dataset-preview';
import { usePastRuns } from '../hooks/use-past-runs';
import { createJobCurl } from '../lib/curl';
import { checkJsonl, checkPassed } from '../lib/dataset-check';
import { estimateDuration } from '../lib/estimate';
import { emptyRow, rowsToJsonl, type ExampleRow } from '../lib/examples-table';
import { formatDuration, formatNumber, shortModelName } from '../lib/format';
import { emptyHyperparameters, toHyperParameters } from '../lib/hyperparameters';
import { int } from '../lib/job-state';
import { navigate } from '../router';
import { useSettings } from '../settings';
import { consoleBucketFor } from '../../service/storage/buckets';

interface LoadedFile {
  file: File;
  text: string;
}

/** The local model a base-model name runs as (Google names are aliases of local models). */
const resolvedName = (models: BaseModel[], name: string | undefined): string | undefined => {
  if (!name) return undefined;
  const full = name.startsWith('models/') ? name : `models/${name}`;
  const model = models.find((m) => m.name === full);
  return model?.baseModelId ?? full.replace(/^models\//, '');
};

export function CreatePage() {
  const settings = useSettings();
  const models = useAsync(() => listTunableModels(), [settings]);
  const [displayName, setDisplayName] = useState('');
  const [description, setDescription] = useState('');
  const [chosenBase, setBaseModel] = useState<string>();
  const [hyper, setHyper] = useState(emptyHyperparameters);
  const [mode, setMode] = useState<'file' | 'table'>('file');
  const [trainingFile, setTrainingFile] = useState<LoadedFile>();
  const [validationFile, setValidationFile] = useState<LoadedFile>();
  const [rows, setRows] = useState<ExampleRow[]>([emptyRow(), emptyRow()]);
  const [readError, setReadError] = useState<unknown>();
  const [submitting, setSubmitting] = useState(false);
  const [submitError, setSubmitError] = useState<unknown>();

  // A local model (not an alias) is the natural default.
  const modelList = models.data ?? [];
  const baseModel = chosenBase ?? (modelList.find((m) => !m.baseModelId) ?? modelList[0])?.name;

  const trainingText: DatasetText | undefined =
    mode === 'file'
      ? trainingFile && { text: trainingFile.text, fileName: trainingFile.file.name }
      : rows.some((r) => r.input.trim() || r.output.trim())
        ? { text: rowsToJsonl(rows), fileName: 'examples.jsonl' }
        : undefined;
  const validationText: DatasetText | undefined = validationFile && { text: validationFile.text, fileName: validationFile.file.name };
  const trainingCheck = useMemo(() => trainingText && checkJsonl(trainingText.text), [trainingText?.text]);
  const validationCheck = useMemo(() => validationText && checkJsonl(validationText.text), [validationText?.text]);
  const dataReady = !!trainingCheck && checkPassed(trainingCheck) && (!validationCheck || checkPassed(validationCheck));

  const buildRequest = (uris: DatasetUris): NewTuningJob => ({
    baseModel: shortModelName(baseModel),
    tunedModelDisplayName: displayName.trim() || undefined,
    ...(description.trim() ? { description: description.trim() } : {}),
    supervisedTuningSpec: {
      trainingDatasetUri: uris.trainingUri,
      ...(uris.validationUri ? { validationDatasetUri: uris.validationUri } : {}),
      hyperParameters: toHyperParameters(hyper),
    },
  });
  const requestKey = JSON.stringify([baseModel, displayName, description, hyper, settings]);
  const preview = useDatasetPreview(
    dataReady && baseModel ? trainingText : undefined,
    validationText,
    buildRequest,
    requestKey,
    mode === 'table' ? 1000 : 300,
  );

  const sameBase = (jobBase: string | undefined) => resolvedName(modelList, jobBase) === resolvedName(modelList, baseModel);
  const pastRuns = usePastRuns(models.data ? baseModel : undefined, sameBase);
  const stats = preview.job?.tuningDataStats?.supervisedTuningDataStats;
  const filled = preview.job?.supervisedTuningSpec?.hyperParameters;
  const steps = int(stats?.tuningStepCount);
  const estimate = steps && pastRuns.data ? estimateDuration(steps, int(filled?.batchSize), pastRuns.data) : undefined;

  const readFile = async (file: File | undefined, set: (loaded: LoadedFile | undefined) => void) => {
    setReadError(undefined);
    if (!file) return set(undefined);
    try {
      set({ file, text: await file.text() });
    } catch (error) {
      setReadError(error);
    }
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!dataReady || !trainingText || !baseModel) return;
    setSubmitting(true);
    setSubmitError(undefined);
    try {
      const job = await createJob(buildRequest(await uploadDatasets(trainingText, validationText)));
      navigate(`/jobs/${jobId(job.name)}`);
    } catch (error) {
      setSubmitError(error);
      setSubmitting(false);
    }
  };

  const curl = createJobCurl(
    location.origin,
    jobsPath(),
    buildRequest(preview.uris ?? { trainingUri: `gs://${consoleBucketFor(settings.project)}/datasets/YOUR-FILE.jsonl` }),
    !!settings.apiKey,
  );

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        New tuning job
      </h1>
      <form class="create-layout" onSubmit={submit} noValidate>
        <div class="create-main">
          <fieldset>
            <legend>Model</legend>
            <div class="field">
              <label for="display-name">Display name</label>
              <input id="display-name" maxLength={128} value={displayName} onInput={(e) => setDisplayName(e.currentTarget.value)} placeholder="e.g. number successor" />
            </div>
            <div class="field">
              <label for="base-model">Base model</label>
              <select id="base-model" value={baseModel} disabled={!models.data} onChange={(e) => setBaseModel(e.currentTarget.value)}>
                {modelList.map((m) => (
                  <option value={m.name}>
                    {shortModelName(m.name)}
                    {m.baseModelId ? ` (runs as ${m.baseModelId})` : ''}
                  </option>
                ))}
              </select>
              <ErrorBanner error={models.error} onRetry={models.reload} />
            </div>
            <div class="field">
              <label for="description">Description (optional)</label>
              <input id="description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
            </div>
          </fieldset>

          <fieldset>
            <legend>Training data</legend>
            <div class="segmented" role="radiogroup" aria-label="How to give the examples">
              <label>
                <input type="radio" name="data-mode" checked={mode === 'file'} onChange={() => setMode('file')} /> Upload a JSONL file
              </label>
              <label>
                <input type="radio" name="data-mode" checked={mode === 'table'} onChange={() => setMode('table')} /> Type examples
              </label>
            </div>
            {mode === 'file' ? (
              <FileDrop id="training-file" label="Training dataset (JSONL)" file={trainingFile?.file} onFile={(f) => readFile(f, setTrainingFile)} describedBy="training-check" />
            ) : (
              <ExamplesEditor rows={rows} onChange={setRows} />
            )}
            <p class="hint">
              One example per line: <code>{'{"text_input": "…", "output": "…"}'}</code>, <code>{'{"contents": [{"role": "user", "parts": [{"text": "…"}]}, …]}'}</code> or{' '}
              <code>{'{"messages": [{"role": "user", "content": "…"}, …]}'}</code>.
            </p>
            <ErrorBanner error={readError} />
            <DatasetProblems id="training-check" what="Training data" check={trainingCheck} />
            <FileDrop id="validation-file" label="Validation dataset (optional)" file={validationFile?.file} onFile={(f) => readFile(f, setValidationFile)} describedBy="validation-check" />
            <DatasetProblems id="validation-check" what="Validation data" check={validationCheck} />
          </fieldset>

          <HyperparameterInputs value={hyper} onChange={setHyper} filled={filled} />
        </div>

        <aside class="create-side">
          <section class="panel" aria-labelledby="estimate-title">
            <h2 id="estimate-title">Before you start</h2>
            <div aria-live="polite">
              {preview.phase === 'idle' && <p class="muted">{trainingCheck && !dataReady ? 'Fix the dataset errors to get an estimate.' : 'Add a dataset to see its steps and an estimated duration.'}</p>}
              {preview.phase === 'uploading' && <p>Uploading the dataset to Attune's store…</p>}
              {preview.phase === 'checking' && <p>The server is checking the dataset…</p>}
              {preview.phase === 'error' && <ErrorBanner error={preview.error} />}
              {preview.phase === 'done' && (
                <>
                  <dl class="facts" data-testid="estimate">
                    <dt>Examples</dt>
                    <dd>{formatNumber(stats?.tuningDatasetExampleCount)}</dd>
                    <dt>Epochs × batch size</dt>
                    <dd>
                      {formatNumber(filled?.epochCount)} × {formatNumber(filled?.batchSize)}
                    </dd>
                    <dt>Steps</dt>
                    <dd data-testid="estimate-steps">{formatNumber(steps)}</dd>
                    <dt>Billable tokens</dt>
                    <dd>{formatNumber(stats?.totalBillableTokenCount)}</dd>
                    <dt>Duration on this machine</dt>
                    <dd>{estimate ? `≈ ${formatDuration(estimate.seconds)}` : pastRuns.loading ? 'Looking at past runs…' : 'no estimate'}</dd>
                  </dl>
                  <p class="hint" data-testid="estimate-duration">
                    {estimate
                      ? `Estimated ${estimate.basis}`
                      : pastRuns.loading
                        ? ''
                        : 'No finished run on this base model yet to measure its speed from, so no duration estimate.'}
                  </p>
                </>
              )}
            </div>
            {preview.phase === 'done' && (
              <details>
                <summary>Data statistics</summary>
                <DataStats stats={stats} />
              </details>
            )}
            <ErrorBanner error={submitError} />
            <button type="submit" class="primary wide" disabled={!dataReady || !baseModel || submitting} aria-describedby="submit-hint">
              {submitting ? 'Starting…' : 'Start tuning'}
            </button>
            <p id="submit-hint" class="hint">
              {dataReady ? 'The job starts at once and runs in the background.' : 'Starts once the dataset has no errors.'}
            </p>
          </section>
          <details class="panel">
            <summary>Equivalent curl command</summary>
            <CopyBlock text={curl} label="curl command that creates this job" />
          </details>
        </aside>
      </form>
    </section>
  );
}
