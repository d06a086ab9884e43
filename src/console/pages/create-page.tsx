// A new tuning job: name and base model, the dataset (a JSONL file, examples typed as a table, or a file
// already in the store picked by gs:// URI; a CSV is offered an import), an optional validation set,
// hyperparameters, and the method: supervised, or preference tuning (DPO, with its beta) on {contents, completions}
// lines. "Clone" (/new?clone=ID) pre-fills everything from an existing job; "Continue tuning" (/new?continue=ID)
// starts from that job's tuned model (preTunedModel: same base model and adapter size; without a new display
// name the result is the next version of its Model). The dataset is checked in the browser first (errors by line,
// nothing uploaded while there are any), then uploaded and checked by the server (validateOnly), which
// answers the step count; past runs on the same base model turn that into a duration estimate.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { baseModelPath, listTunableModels, type BaseModel } from '../api/gemini';
import { isGsUri, listDatasets } from '../api/storage';
import { createJob, dataStatsOf, getJob, isPreferenceJob, jobId, jobsPath, specOf, type NewTuningJob, type TuningJob } from '../api/vertex';
import { CsvOffer } from '../components/csv-offer';
import { DatasetPicker } from '../components/dataset-picker';
import { CopyBlock } from '../components/copy-block';
import { DataStats } from '../components/data-stats';
import { DatasetProblems } from '../components/dataset-problems';
import { ErrorBanner } from '../components/error-banner';
import { ExamplesEditor } from '../components/examples-editor';
import { FileDrop } from '../components/file-drop';
import { HyperparameterInputs } from '../components/hyperparameter-inputs';
import { useAsync } from '../hooks/use-async';
import { datasetUris, useDatasetPreview, type DatasetSource, type DatasetText, type DatasetUris } from '../hooks/use-dataset-preview';
import { looksLikeCsv } from '../lib/csv-import';
import { usePastRuns } from '../hooks/use-past-runs';
import { createJobCurl } from '../lib/curl';
import { checkJsonl, checkPassed } from '../lib/dataset-check';
import { estimateDuration } from '../lib/estimate';
import { emptyRow, rowsToJsonl, type ExampleRow } from '../lib/examples-table';
import { adapterRank } from '../lib/hyperparameters';
import { formatDuration, formatNumber, shortModelName } from '../lib/format';
import { checkHyperparameters, emptyHyperparameters, fieldOfViolation, toHyperParameters, type HyperparameterCheck, type HyperparameterField, type HyperparameterFields } from '../lib/hyperparameters';
import { ApiError } from '../api/http';
import { int } from '../lib/job-state';
import { Link, navigate } from '../router';
import { useSettings } from '../settings';
import { consoleBucketFor } from '../../service/storage/buckets';

interface LoadedFile {
  file: File;
  text: string;
}

/** A CSV imported as JSONL stands in for the file it came from. */
const imported = (jsonl: string, name: string): LoadedFile => ({ file: new File([jsonl], name, { type: 'application/jsonl' }), text: jsonl });

/** The local model a base-model name runs as (Google names are aliases of local models). */
const resolvedName = (models: BaseModel[], name: string | undefined): string | undefined => {
  if (!name) return undefined;
  const full = name.startsWith('models/') ? name : `models/${name}`;
  const model = models.find((m) => m.name === full);
  return model?.baseModelId ?? full.replace(/^models\//, '');
};

const fieldLabels: Record<HyperparameterField, { id: string; label: string }> = {
  epochs: { id: 'epochs', label: 'Epochs' },
  batchSize: { id: 'batch-size', label: 'Batch size' },
  learningRate: { id: 'learning-rate', label: 'Learning rate' },
};

/** The hyperparameter a google.rpc error's field violation names, with the server's message. */
function fieldError(error: unknown): { field: HyperparameterField; message: string } | undefined {
  if (!(error instanceof ApiError)) return undefined;
  for (const detail of error.details ?? []) {
    for (const violation of (detail as { fieldViolations?: { field?: string }[] }).fieldViolations ?? []) {
      const field = fieldOfViolation(violation.field);
      if (field) return { field, message: error.message };
    }
  }
  return undefined;
}

/** Brings a field into view and focus (it may be inside the closed "Advanced options"). */
function focusField(id: string): void {
  const input = document.getElementById(id);
  const details = input?.closest('details');
  if (details) details.open = true;
  input?.scrollIntoView({ block: 'center' });
  input?.focus({ preventScroll: true });
}

/** The form's fields from an existing job ("Clone"): its hyperparameters as given or as the server filled them. */
function hyperparametersOf(job: TuningJob): HyperparameterFields {
  const hp = specOf(job)?.hyperParameters ?? {};
  const text = (v: unknown) => (v === undefined || v === null ? '' : String(v));
  return {
    epochs: text(hp.epochCount),
    batchSize: text(hp.batchSize),
    learningRateMode: hp.learningRate !== undefined ? 'rate' : 'multiplier',
    learningRate: text(hp.learningRate ?? hp.learningRateMultiplier),
    adapterSize: adapterRank(hp.adapterSize) ? hp.adapterSize! : '',
  };
}

type DataMode = 'file' | 'table' | 'stored';
type Method = 'supervised' | 'preference';

export function CreatePage({ cloneOf, continueFrom }: { cloneOf?: string; continueFrom?: string }) {
  const settings = useSettings();
  const models = useAsync(() => listTunableModels(), [settings]);
  const clone = useAsync(async (signal) => (cloneOf ? getJob(cloneOf, signal) : undefined), [cloneOf, settings]);
  const continued = useAsync(async (signal) => (continueFrom ? getJob(continueFrom, signal) : undefined), [continueFrom, settings]);
  const sourceModel = continued.data?.tunedModel?.model;
  const [method, setMethod] = useState<Method>('supervised');
  const [beta, setBeta] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [description, setDescription] = useState('');
  const [chosenBase, setBaseModel] = useState<string>();
  const [hyper, setHyper] = useState(emptyHyperparameters);
  const [mode, setMode] = useState<DataMode>('file');
  const [storedTraining, setStoredTraining] = useState('');
  const [storedValidation, setStoredValidation] = useState('');
  const stored = useAsync((signal) => (mode === 'stored' ? listDatasets(signal) : Promise.resolve(undefined)), [mode === 'stored', settings]);
  const [trainingFile, setTrainingFile] = useState<LoadedFile>();
  const [validationFile, setValidationFile] = useState<LoadedFile>();
  const [rows, setRows] = useState<ExampleRow[]>([emptyRow(), emptyRow()]);
  const [readError, setReadError] = useState<unknown>();
  const [submitting, setSubmitting] = useState(false);
  const [submitError, setSubmitError] = useState<unknown>();

  // Clone: every field from the job, its datasets by URI (examples sent inline have none to name).
  useEffect(() => {
    const job = clone.data;
    if (!job) return;
    setDisplayName(`${job.tunedModelDisplayName || jobId(job.name)} (copy)`.slice(0, 128));
    setDescription(job.description ?? '');
    if (job.baseModel) setBaseModel(baseModelPath(job.baseModel));
    setHyper(hyperparametersOf(job));
    setMethod(isPreferenceJob(job) ? 'preference' : 'supervised');
    setBeta(job.preferenceOptimizationSpec?.hyperParameters?.beta?.toString() ?? '');
    const spec = specOf(job);
    if (spec?.trainingDatasetUri) {
      setMode('stored');
      setStoredTraining(spec.trainingDatasetUri);
      setStoredValidation(spec.validationDatasetUri ?? '');
    }
  }, [clone.data]);

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
  // A CSV where JSONL is expected is offered an import rather than a parse error per line.
  const trainingCsv = mode === 'file' && !!trainingFile && looksLikeCsv(trainingFile.text);
  const validationCsv = mode !== 'stored' && !!validationFile && looksLikeCsv(validationFile.text);
  const trainingCheck = useMemo(
    () => (mode !== 'stored' && trainingText && !trainingCsv ? checkJsonl(trainingText.text, method) : undefined),
    [mode, trainingText?.text, trainingCsv, method],
  );
  const validationCheck = useMemo(
    () => (mode !== 'stored' && validationText && !validationCsv ? checkJsonl(validationText.text, method) : undefined),
    [mode, validationText?.text, validationCsv, method],
  );
  const betaValue = beta.trim() === '' ? undefined : Number(beta);
  const betaError = betaValue !== undefined && !(betaValue > 0 && betaValue <= 10) ? 'Beta is a number above 0 and at most 10 (Google suggests 0.01 to 0.5; 0.1 by default).' : undefined;
  const storedErrors = {
    training: storedTraining && !isGsUri(storedTraining) ? 'Give a gs://bucket/object URI.' : undefined,
    validation: storedValidation && !isGsUri(storedValidation) ? 'Give a gs://bucket/object URI, or leave it empty.' : undefined,
  };
  const storedReady = mode === 'stored' && isGsUri(storedTraining) && !storedErrors.validation;
  const dataReady =
    mode === 'stored'
      ? storedReady
      : !!trainingCheck && checkPassed(trainingCheck) && !validationCsv && (!validationCheck || checkPassed(validationCheck));
  const source: DatasetSource | undefined =
    mode === 'stored'
      ? storedReady
        ? { kind: 'stored', uris: { trainingUri: storedTraining, ...(storedValidation ? { validationUri: storedValidation } : {}) } }
        : undefined
      : dataReady && trainingText
        ? { kind: 'upload', training: trainingText, validation: validationText }
        : undefined;
  const fieldCheck = useMemo(() => checkHyperparameters(hyper), [hyper]);
  const fieldsValid = Object.keys(fieldCheck.errors).length === 0 && !betaError;

  const buildRequest = (uris: DatasetUris): NewTuningJob => {
    const spec = {
      trainingDatasetUri: uris.trainingUri,
      ...(uris.validationUri ? { validationDatasetUri: uris.validationUri } : {}),
      hyperParameters: {
        ...toHyperParameters(sourceModel ? { ...hyper, adapterSize: '' } : hyper),
        ...(method === 'preference' && betaValue !== undefined ? { beta: betaValue } : {}),
      },
    };
    return {
      ...(sourceModel ? { preTunedModel: { tunedModelName: sourceModel } } : { baseModel: shortModelName(baseModel) }),
      tunedModelDisplayName: displayName.trim() || undefined,
      ...(description.trim() ? { description: description.trim() } : {}),
      ...(method === 'preference' ? { preferenceOptimizationSpec: spec } : { supervisedTuningSpec: spec }),
    };
  };
  const requestKey = JSON.stringify([baseModel, sourceModel, method, beta, displayName, description, hyper, settings]);
  const preview = useDatasetPreview(
    fieldsValid && baseModel ? source : undefined,
    buildRequest,
    requestKey,
    mode === 'table' ? 1000 : 300,
  );

  // A refusal the server pins on a hyperparameter (e.g. too many examples × epochs) is shown at that field.
  const serverField = fieldError(preview.phase === 'error' ? preview.error : undefined) ?? fieldError(submitError);
  const check: HyperparameterCheck = serverField && !fieldCheck.errors[serverField.field] ? { ...fieldCheck, errors: { ...fieldCheck.errors, [serverField.field]: serverField.message } } : fieldCheck;
  const invalidFields = (Object.keys(check.errors) as HyperparameterField[]).map((f) => fieldLabels[f]);
  const ready = dataReady && invalidFields.length === 0 && !betaError && (!!baseModel || !!sourceModel) && (!continueFrom || !!sourceModel);

  const sameBase = (jobBase: string | undefined) => resolvedName(modelList, jobBase) === resolvedName(modelList, baseModel);
  const pastRuns = usePastRuns(models.data ? baseModel : undefined, sameBase);
  const stats = dataStatsOf(preview.job);
  const filled = preview.job && specOf(preview.job)?.hyperParameters;
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
    if (!ready || !source) return;
    setSubmitting(true);
    setSubmitError(undefined);
    try {
      const job = await createJob(buildRequest(await datasetUris(source)));
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
      {clone.data && (
        <p class="notice" role="status" data-testid="clone-notice">
          Cloned from <Link href={`/jobs/${cloneOf}`}>{clone.data.tunedModelDisplayName || cloneOf}</Link>: every field is filled in from it; change what you like.
        </p>
      )}
      {continueFrom && (
        <p class="notice" role="status" data-testid="continue-notice">
          {continued.data ? (
            sourceModel ? (
              <>
                Continues <Link href={`/jobs/${continueFrom}`}>{continued.data.tunedModelDisplayName || continueFrom}</Link> ({shortModelName(sourceModel.split('/').slice(-1)[0])}): training
                starts from its adapter, on its base model and adapter size. Leave the display name empty to make the next version of its model; a new
                name makes a new model.
              </>
            ) : (
              'That job has no tuned model to continue from: only a job that succeeded has one.'
            )
          ) : (
            'Loading the model to continue…'
          )}
        </p>
      )}
      <ErrorBanner error={continued.error} onRetry={continued.reload} />
      <form class="create-layout" onSubmit={submit} noValidate>
        <div class="create-main">
          <fieldset>
            <legend>Model</legend>
            <div class="field">
              <label for="display-name">Display name</label>
              <input
                id="display-name"
                maxLength={128}
                value={displayName}
                onInput={(e) => setDisplayName(e.currentTarget.value)}
                placeholder={sourceModel ? `${continued.data?.tunedModelDisplayName ?? ''} (a new version)` : 'e.g. number successor'}
              />
            </div>
            <div class="segmented" role="radiogroup" aria-label="Tuning method">
              <label>
                <input type="radio" name="method" checked={method === 'supervised'} onChange={() => setMethod('supervised')} /> Supervised
              </label>
              <label>
                <input type="radio" name="method" checked={method === 'preference'} onChange={() => setMethod('preference')} /> Preference (DPO)
              </label>
            </div>
            {method === 'preference' && (
              <div class={`field${betaError ? ' invalid' : ''}`}>
                <label for="beta">Beta</label>
                <input id="beta" type="number" inputMode="decimal" min={0} step="any" value={beta} placeholder="default: 0.1" onInput={(e) => setBeta(e.currentTarget.value)} aria-invalid={betaError ? 'true' : undefined} />
                {betaError ? (
                  <p class="field-error" data-testid="beta-message">
                    {betaError}
                  </p>
                ) : (
                  <p class="hint">How far the model may move from where it starts; lower moves further. Google recommends supervised tuning first, then preference tuning continued from that model.</p>
                )}
              </div>
            )}
            {!sourceModel && <div class="field">
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
            </div>}
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
              <label>
                <input type="radio" name="data-mode" checked={mode === 'stored'} onChange={() => setMode('stored')} /> Pick a gs:// dataset
              </label>
            </div>
            {mode === 'stored' ? (
              <>
                <DatasetPicker
                  id="stored-training"
                  label="Training dataset (gs:// URI)"
                  value={storedTraining}
                  onChange={setStoredTraining}
                  objects={stored.data}
                  error={storedErrors.training}
                  hint={
                    stored.data
                      ? `${stored.data.length} ${stored.data.length === 1 ? 'file' : 'files'} in this project's buckets to pick from; the server checks the one picked.`
                      : 'Looking at the files in this project\'s buckets…'
                  }
                />
                <ErrorBanner error={stored.error} onRetry={stored.reload} />
                <DatasetPicker
                  id="stored-validation"
                  label="Validation dataset (optional gs:// URI)"
                  value={storedValidation}
                  onChange={setStoredValidation}
                  objects={stored.data}
                  error={storedErrors.validation}
                />
              </>
            ) : (
              <>
                {mode === 'file' ? (
                  <FileDrop id="training-file" label="Training dataset (JSONL)" file={trainingFile?.file} onFile={(f) => readFile(f, setTrainingFile)} describedBy="training-check" />
                ) : (
                  <ExamplesEditor rows={rows} onChange={setRows} />
                )}
                {method === 'preference' ? (
                  <p class="hint">
                    One preference per line: <code>{'{"contents": [… ending with the user\'s turn], "completions": [{"score": 1, "completion": {"role": "model", "parts": [{"text": "…"}]}}, {"score": 0, "completion": …}]}'}</code>, the preferred completion scored higher.
                  </p>
                ) : (
                  <p class="hint">
                    One example per line: <code>{'{"text_input": "…", "output": "…"}'}</code>, <code>{'{"contents": [{"role": "user", "parts": [{"text": "…"}]}, …]}'}</code> or{' '}
                    <code>{'{"messages": [{"role": "user", "content": "…"}, …]}'}</code>. A CSV file can be imported.
                  </p>
                )}
                <ErrorBanner error={readError} />
                {trainingCsv && trainingFile ? (
                  <CsvOffer id="training-check" fileName={trainingFile.file.name} text={trainingFile.text} onImport={(jsonl, name) => setTrainingFile(imported(jsonl, name))} />
                ) : (
                  <DatasetProblems id="training-check" what="Training data" check={trainingCheck} />
                )}
                <FileDrop id="validation-file" label="Validation dataset (optional)" file={validationFile?.file} onFile={(f) => readFile(f, setValidationFile)} describedBy="validation-check" />
                {validationCsv && validationFile ? (
                  <CsvOffer id="validation-check" fileName={validationFile.file.name} text={validationFile.text} onImport={(jsonl, name) => setValidationFile(imported(jsonl, name))} />
                ) : (
                  <DatasetProblems id="validation-check" what="Validation data" check={validationCheck} />
                )}
              </>
            )}
            {clone.data && !specOf(clone.data)?.trainingDatasetUri && (
              <p class="notice" role="status">
                The job cloned sent its examples inline, not as a file: give the dataset again.
              </p>
            )}
            <ErrorBanner error={clone.error} onRetry={clone.reload} />
          </fieldset>

          <HyperparameterInputs value={hyper} onChange={setHyper} filled={filled} check={check} adapterSizeFixed={!!continueFrom} />
        </div>

        <aside class="create-side">
          <section class="panel" aria-labelledby="estimate-title">
            <h2 id="estimate-title">Before you start</h2>
            <div aria-live="polite">
              {preview.phase === 'idle' && (
                <p class="muted">
                  {trainingCheck && !dataReady
                    ? 'Fix the dataset errors to get an estimate.'
                    : !fieldsValid
                      ? 'Fix the fields marked in red to get an estimate.'
                      : 'Add a dataset to see its steps and an estimated duration.'}
                </p>
              )}
              {preview.phase === 'uploading' && <p>Uploading the dataset to Attune's store…</p>}
              {preview.phase === 'checking' && <p>The server is checking the dataset…</p>}
              {preview.phase === 'error' && (serverField ? <p class="muted">Fix the fields marked in red to get an estimate.</p> : <ErrorBanner error={preview.error} />)}
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
            {!serverField && <ErrorBanner error={submitError} />}
            <button type="submit" class="primary wide" disabled={!ready || submitting} aria-describedby="submit-hint">
              {submitting ? 'Starting…' : 'Start tuning'}
            </button>
            <p id="submit-hint" class="hint" data-testid="submit-hint">
              {invalidFields.length > 0 ? (
                <>
                  Fix {invalidFields.length === 1 ? 'this field' : 'these fields'} first:{' '}
                  {invalidFields.map((f, i) => (
                    <>
                      {i > 0 && ', '}
                      <button type="button" class="link" onClick={() => focusField(f.id)}>
                        {f.label}
                      </button>
                    </>
                  ))}
                  .
                </>
              ) : dataReady ? (
                'The job starts at once and runs in the background.'
              ) : (
                'Starts once the dataset has no errors.'
              )}
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
