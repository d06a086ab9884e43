// Acceptance: Google's tuning tutorials (the seeds in /work/shared/seeds), their curl flows transcribed into
// test/seeds/*.sh, run as written against a fresh `attune serve` with only the base URL and credentials
// changed (and, for the Vertex seeds 002 and 004, their placeholders filled in). Each must tune its model to
// ACTIVE (JOB_STATE_SUCCEEDED on Vertex) with its own hyperparameters and get an answer from it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, repoRoot, useServer, waitFor, type ServerFixture } from './helpers/server.js';

/** The seeds' own project id; a valid Google Cloud project id, so Attune issues keys for it. */
const project = 'my-project-id';
const scriptTimeoutMs = Number(process.env.SEED_TIMEOUT_MS ?? 300_000);

interface ScriptRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  cwd: string;
  file(name: string): string;
  json(name: string): any;
}

function runSeed(t: { after(fn: () => void): void }, script: string, fixture: ServerFixture): Promise<ScriptRun> {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'attune-seed-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(repoRoot, 'test', 'seeds', script)], {
      cwd,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        // 003 moves the cursor with tput as in a terminal; tput needs a terminal type.
        TERM: 'xterm',
        ATTUNE_URL: fixture.url,
        ATTUNE_API_KEY: fixture.keys[project],
        ATTUNE_PROJECT: project,
        // The polling steps the seeds do in Python sleep 31 s (000) or 5 s (001) between polls.
        SEED_POLL_SECONDS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), scriptTimeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const file = (name: string) => readFileSync(path.join(cwd, name), 'utf8');
      resolve({ code, signal, stdout, stderr, cwd, file, json: (name) => JSON.parse(file(name)) });
    });
  });
}

function assertSucceeded(run: ScriptRun, fixture: ServerFixture, done: string) {
  const report = () =>
    `exit ${run.code ?? run.signal}\n--- stdout\n${run.stdout.slice(-6000)}\n--- stderr\n${run.stderr.slice(-4000)}\n--- server\n${fixture.server.logs().slice(-4000)}`;
  assert.equal(run.code, 0, report());
  assert.ok(run.stdout.includes(done), report());
}

/** The stdout between two of a script's `== …` markers. */
function section(stdout: string, from: string, to: string): string {
  const start = stdout.indexOf(from);
  const end = stdout.indexOf(to, start);
  assert.ok(start >= 0 && end > start, `sections ${from} … ${to} in:\n${stdout}`);
  return stdout.slice(start + from.length, end);
}

/** Examples a project "already has" models from: the seeds list existing tuned models before creating one. */
async function existingModels(fixture: ServerFixture, count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const created = await call(`${fixture.url}/v1beta/tunedModels`, {
      method: 'POST',
      key: fixture.keys[project],
      body: {
        displayName: `existing model ${i}`,
        baseModel: 'models/gemini-1.5-flash-001-tuning',
        tuningTask: {
          hyperparameters: { epochCount: 1, batchSize: 1 },
          trainingData: { examples: { examples: [{ textInput: String(i), output: String(i + 1) }] } },
        },
      },
    });
    assert.equal(created.status, 200, created.text);
    names.push(created.json.metadata.tunedModel);
  }
  return names;
}

const numberOfExamples = 15;

describe('seed 000: PaLM v1beta3 curl (French)', () => {
  const fixture = useServer({ projects: [project] });

  test('lists, tunes text-bison-001 to ACTIVE and generateText answers two candidates', { timeout: scriptTimeoutMs + 30_000 }, async (t) => {
    // The seed pipes its list through `grep name`, which fails on a project without tuned models.
    await existingModels(fixture, 1);
    const run = await runSeed(t, '000-palm-v1beta3.sh', fixture);
    assertSucceeded(run, fixture, '== seed 000: done');

    const operation = run.json('tunemodel.json');
    assert.equal(operation.metadata['@type'], 'type.googleapis.com/google.ai.generativelanguage.v1beta3.CreateTunedModelMetadata');
    // The seed's own response: "totalSteps": 23 for 15 examples, 3 epochs, batch 2.
    assert.equal(operation.metadata.totalSteps, Math.ceil((numberOfExamples * 3) / 2));
    assert.equal(operation.metadata.totalSteps, 23);
    assert.match(operation.metadata.tunedModel, /^tunedModels\/number-generator-model-[a-z0-9]+$/);

    // The GET step's `\ | grep state` quirk: the state is printed, curl complains about the " " URL.
    assert.match(section(run.stdout, '== seed 000: get state', '== seed 000: wait'), /"state" *: *"(CREATING|ACTIVE)"/);
    assert.match(run.stderr, /curl: \(3\)/);

    const finished = run.json('operation.json');
    assert.equal(finished.done, true);
    assert.equal(finished.response.state, 'ACTIVE');
    assert.equal(finished.response['@type'], 'type.googleapis.com/google.ai.generativelanguage.v1beta3.TunedModel');
    assert.deepEqual(finished.response.tuningTask.hyperparameters, { epochCount: 3, batchSize: 2, learningRate: 0.001 });

    // `| grep output` prints the lines that hold an output: with Attune's compact JSON that is the whole body.
    const answer = section(run.stdout, '== seed 000: generateText', '== seed 000: done').trim();
    const outputs = answer.match(/"output" *: *"(?:[^"\\]|\\.)+"/g) ?? [];
    assert.ok(outputs.length >= 1, `an output in:\n${answer}`);
    let body: { candidates?: { output?: string }[] } | undefined;
    try {
      body = JSON.parse(answer);
    } catch {
      body = undefined; // pretty-printed JSON: grep kept only the output lines
    }
    if (body) {
      // "candidate_count": 2 gives two candidates. (One may be empty: stories260K sometimes ends its answer at
      // once at temperature 1.0, about 4% of candidates, and proto3 JSON then omits its "output".)
      assert.equal(body.candidates?.length, 2, answer);
      assert.ok(body.candidates.some((c) => typeof c.output === 'string' && c.output.length > 0), answer);
    } else {
      assert.ok(outputs.length <= 2, answer);
    }
  });
});

describe('seed 001: Gemini v1beta curl with OAuth headers (Portuguese)', () => {
  const fixture = useServer({ projects: [project] });

  test('lists, tunes gemini-1.0-pro-001 to ACTIVE (polling v1 operations until done) and generateContent answers', { timeout: scriptTimeoutMs + 30_000 }, async (t) => {
    const run = await runSeed(t, '001-gemini-v1beta.sh', fixture);
    assertSucceeded(run, fixture, '== seed 001: done');

    // A fresh project lists as {} (an empty repeated field is omitted, as Google does).
    assert.equal(section(run.stdout, '== seed 001: list tuned models', '== seed 001: create').trim(), '{}');

    const operation = run.json('tunemodel.json');
    assert.equal(operation.metadata['@type'], 'type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata');
    // The seed's own response: "totalSteps": 38 for 15 examples, 5 epochs, batch 2.
    assert.equal(operation.metadata.totalSteps, 38);
    assert.equal(operation.done, undefined, 'create answers at once, before tuning is done');

    const finished = run.json('operation.json');
    assert.equal(finished.name, operation.name);
    assert.equal(finished.done, true);
    assert.equal(finished.response.state, 'ACTIVE');
    assert.equal(finished.metadata.completedSteps, 38);
    assert.equal(finished.metadata.completedPercent, 100);
    assert.deepEqual(finished.metadata.snapshots.at(-1).epoch, 5);

    const answer = JSON.parse(section(run.stdout, '== seed 001: generateContent', '== seed 001: done').trim());
    assert.equal(answer.candidates[0].content.role, 'model');
    assert.ok(answer.candidates[0].content.parts.map((p: { text?: string }) => p.text ?? '').join('').length > 0);
  });
});

describe('seed 003: Gemini v1beta bash with ?key= (German)', () => {
  const fixture = useServer({ projects: [project] });

  test('pages the list, tunes gemini-1.5-flash-001-tuning to ACTIVE (polling completedPercent), generateContent answers, DELETE', { timeout: scriptTimeoutMs + 30_000 }, async (t) => {
    // Six existing models: the seed's list uses page_size=5, so its nextPageToken branch runs.
    const existing = await existingModels(fixture, 6);
    const run = await runSeed(t, '003-gemini-key.sh', fixture);
    assertSucceeded(run, fixture, '== seed 003: done');

    const firstPage = run.json('tuned_models.json');
    const firstNames: string[] = firstPage.tunedModels.map((m: { name: string }) => m.name);
    assert.equal(firstNames.length, 5);
    assert.ok(firstNames.every((name) => existing.includes(name)), firstNames.join(', '));
    assert.equal(typeof firstPage.nextPageToken, 'string');
    // The seed's second-page URL puts "?key=…" inside page_token, so it goes without credentials.
    const secondPage = run.json('tuned_models2.json');
    assert.equal(secondPage.error?.status, 'PERMISSION_DENIED', JSON.stringify(secondPage));
    assert.equal(secondPage.error?.code, 403);

    const operation = run.json('tunemodel.json');
    assert.equal(operation.metadata.totalSteps, 38);
    const finished = run.json('tuning_operation.json');
    assert.equal(finished.done, true);
    assert.equal(finished.metadata.completedPercent, 100);
    assert.match(run.stdout, /Tuning\.\.\.100%/);
    assert.equal(run.json('tuned_model.json').state, 'ACTIVE');

    const answer = JSON.parse(section(run.stdout, '== seed 003: generateContent', '== seed 003: delete').trim());
    assert.ok(answer.candidates[0].content.parts.map((p: { text?: string }) => p.text ?? '').join('').length > 0);

    // The DELETE answered {} (checked by the script); the model is gone.
    const gone = await call(`${fixture.url}/v1beta/${operation.metadata.tunedModel}`, { key: fixture.keys[project] });
    assert.equal(gone.status, 404);
    assert.equal(gone.json.error.message, `Tuned model ${operation.metadata.tunedModel} does not exist.`);
  });
});

// Vertex AI tuningJobs (seeds 002 and 004): datasets uploaded to Attune's object store as the gs:// objects the
// seeds name, a job tuned to JOB_STATE_SUCCEEDED and asked on its endpoint, and one cancelled while running.

const vertexParent = `projects/${project}/locations/us-central1`;
const trainingUri = 'gs://cloud-samples-data/ai-platform/generative_ai/sft_train_data.jsonl';
const validationUri = 'gs://cloud-samples-data/ai-platform/generative_ai/sft_validation_data.jsonl';
/** Vertex's default epochs for a dataset of 15 examples (Attune's rule: 10 below 100 examples). */
const vertexDefaultEpochs = 10;
/** The default batch for 15 examples: Google's "4 or 16 based on the number of training examples". */
const batchSize = 4;
const stepsFor = (epochs: number) => Math.ceil((numberOfExamples * epochs) / batchSize);

/** The number n of projects/{p}/locations/us-central1/tuningJobs/{n}. */
function jobNumber(job: { name?: string }): string {
  const match = new RegExp(`^${vertexParent}/tuningJobs/(\\d+)$`).exec(job.name ?? '');
  assert.ok(match, `a tuning job name in ${JSON.stringify(job)}`);
  return match[1];
}

/** A job as create answered it: pending, on the seeds' base model and datasets. */
function assertCreated(job: any, { validation, epochs }: { validation: boolean; epochs: number }) {
  jobNumber(job);
  assert.equal(job.state, 'JOB_STATE_PENDING', JSON.stringify(job));
  assert.equal(job.baseModel, 'gemini-1.0-pro-002');
  assert.equal(job.supervisedTuningSpec.trainingDatasetUri, trainingUri);
  assert.equal(job.supervisedTuningSpec.validationDatasetUri, validation ? validationUri : undefined);
  const hyperParameters = job.supervisedTuningSpec.hyperParameters;
  assert.equal(hyperParameters.epochCount, String(epochs));
  assert.equal(hyperParameters.learningRateMultiplier, 1);
  assert.equal(job.experiment, undefined, 'a create response never carries an experiment (it breaks vertexai.tuning)');
  const stats = job.tuningDataStats.supervisedTuningDataStats;
  assert.equal(stats.tuningDatasetExampleCount, String(numberOfExamples));
  assert.equal(stats.tuningStepCount, String(stepsFor(epochs)));
  assert.equal(stats.userMessagePerExampleDistribution.sum, String(2 * numberOfExamples));
}

/** The tuned job ended SUCCEEDED with its model and endpoint, after all its epochs. */
function assertSucceededJob(job: any, created: any, epochs: number) {
  const number = jobNumber(created);
  assert.equal(job.name, created.name);
  assert.equal(job.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(job));
  assert.equal(job.error, undefined);
  const { checkpoints, ...model } = job.tunedModel;
  assert.deepEqual(model, { model: `${vertexParent}/models/${number}@1`, endpoint: `${vertexParent}/endpoints/${number}` });
  // Vertex keeps one checkpoint per epoch below 10 epochs, else 10; the last is the model's own endpoint.
  assert.equal(checkpoints.length, Math.min(epochs, 10), JSON.stringify(checkpoints));
  assert.deepEqual(checkpoints.at(-1), { checkpointId: String(checkpoints.length), epoch: String(epochs), step: String(stepsFor(epochs)), endpoint: model.endpoint });
  assert.deepEqual(job.tuningJobMetadata, { completedEpochCount: String(epochs), completedStepCount: String(stepsFor(epochs)) });
  assert.ok(Date.parse(job.startTime) <= Date.parse(job.endTime), `${job.startTime} … ${job.endTime}`);
}

/** The job the script cancelled: seen RUNNING, cancel answered {}, it ended CANCELLED with error.code 1, keeping what it reached. */
function assertCancelledJob(run: ScriptRun, epochs: number) {
  const created = run.json('cancel_job.json');
  const running = run.json('cancel_job_running.json');
  const cancelled = run.json('cancel_job_get.json');
  jobNumber(created);
  assert.equal(created.supervisedTuningSpec.hyperParameters.epochCount, String(epochs));
  assert.equal(running.name, created.name);
  assert.equal(running.state, 'JOB_STATE_RUNNING');
  assert.deepEqual(run.json('cancelled.json'), {});
  assert.equal(cancelled.name, created.name);
  assert.equal(cancelled.state, 'JOB_STATE_CANCELLED', JSON.stringify(cancelled));
  assert.equal(cancelled.error?.code, 1, JSON.stringify(cancelled));
  // As Vertex does, a cancelled run keeps the checkpoints it reached; the last is where it stopped.
  const reached = Number(cancelled.tuningJobMetadata?.completedStepCount ?? 0);
  if (cancelled.tunedModel) assert.equal(cancelled.tunedModel.checkpoints.at(-1).step, String(reached), JSON.stringify(cancelled.tunedModel));
  else assert.equal(reached, 0, JSON.stringify(cancelled));
  assert.ok(cancelled.endTime, 'a cancelled job has its endTime');
  // Cancelled early: far from the job's last step.
  assert.ok(Number(cancelled.tuningJobMetadata?.completedStepCount ?? 0) < stepsFor(epochs) / 2, JSON.stringify(cancelled.tuningJobMetadata));
}

/** Both jobs the seed created are in its list. */
function assertListed(run: ScriptRun, ...jobs: any[]) {
  const listed: string[] = run.json('tuning_jobs.json').tuningJobs.map((j: { name: string }) => j.name);
  for (const job of jobs) assert.ok(listed.includes(job.name), `${job.name} in ${listed.join(', ')}`);
}

/** The text of a GenerateContentResponse's first candidate. */
const answerText = (answer: any): string => {
  assert.equal(answer.candidates?.[0]?.content?.role, 'model', JSON.stringify(answer));
  return answer.candidates[0].content.parts.map((p: { text?: string }) => p.text ?? '').join('');
};

/** A job the script did not wait for, once it has ended. */
async function endedJob(fixture: ServerFixture, job: { name: string }): Promise<any> {
  return waitFor(`${job.name} to end`, async () => {
    const got = await call(`${fixture.url}/v1/${job.name}`, { key: fixture.keys[project] });
    assert.equal(got.status, 200, got.text);
    return ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'].includes(got.json.state) ? got.json : undefined;
  }, { timeoutMs: 60_000 });
}

describe('seed 002: Vertex tuningJobs curl (French)', () => {
  const fixture = useServer({ projects: [project] });

  test('creates a basic and an advanced job from gs:// datasets, lists, gets until SUCCEEDED, the endpoint answers, cancels a running job', { timeout: scriptTimeoutMs + 30_000 }, async (t) => {
    const run = await runSeed(t, '002-vertex-fr.sh', fixture);
    assertSucceeded(run, fixture, '== seed 002: done');

    // Cas d'utilisation de base: baseModel and training_dataset_uri only; Vertex picks the epochs by dataset size.
    const basic = run.json('tuning_job_basic.json');
    assertCreated(basic, { validation: false, epochs: vertexDefaultEpochs });
    // "Si ce paramètre n'est pas défini, un nom aléatoire est généré."
    assert.match(basic.tunedModelDisplayName, /^gemini-1\.0-pro-002-[a-z0-9]{8}$/);
    assert.equal(basic.supervisedTuningSpec.hyperParameters.adapterSize, 'ADAPTER_SIZE_ONE', "the seed's default for gemini-1.0-pro-002");

    // Cas d'utilisation avancé: the request's hyper_parameters and display name, echoed.
    const advanced = run.json('tuning_job.json');
    assertCreated(advanced, { validation: true, epochs: 50 });
    assert.equal(advanced.supervisedTuningSpec.hyperParameters.adapterSize, 'ADAPTER_SIZE_FOUR');
    assert.equal(advanced.tunedModelDisplayName, 'tuned_gemini_pro');

    assertListed(run, basic, advanced);
    assertSucceededJob(run.json('tuning_job_get.json'), advanced, 50);
    // The seed's Python prints tuned_model_name, tuned_model_endpoint_name, experiment (None).
    const printed = section(run.stdout, '== seed 002: wait for the job', '== seed 002: generateContent').trim().split('\n').slice(-3);
    assert.deepEqual(printed, [`${vertexParent}/models/${jobNumber(advanced)}@1`, `${vertexParent}/endpoints/${jobNumber(advanced)}`, 'None']);

    // The tuned model learned the examples: greedy, "twenty two" → "twenty three".
    assert.equal(answerText(run.json('answer.json')), 'twenty three');

    assertCancelledJob(run, 5000);

    // The basic job, queued first, trained to the end with the default epochs.
    assertSucceededJob(await endedJob(fixture, basic), basic, vertexDefaultEpochs);
  });
});

describe('seed 004: Vertex tuningJobs curl (Indonesian)', () => {
  const fixture = useServer({ projects: [project] });

  test('creates from request.json and the curl example with gs:// datasets, lists, gets until SUCCEEDED, cancels a running job, the endpoint answers', { timeout: scriptTimeoutMs + 30_000 }, async (t) => {
    const run = await runSeed(t, '004-vertex-id.sh', fixture);
    assertSucceeded(run, fixture, '== seed 004: done');

    // request.json: epoch_count and learning_rate_multiplier (this edition's template has no adapter_size).
    const tuned = run.json('tuning_job.json');
    assertCreated(tuned, { validation: true, epochs: 50 });
    assert.equal(tuned.tunedModelDisplayName, 'tuned_gemini_pro');

    // The curl example: both datasets and a display name, the default epochs.
    const example = run.json('tuning_job_example.json');
    assertCreated(example, { validation: true, epochs: vertexDefaultEpochs });
    assert.equal(example.tunedModelDisplayName, 'tuned_gemini_pro');

    assertListed(run, tuned, example);
    assertSucceededJob(run.json('tuning_job_get.json'), tuned, 50);
    assertCancelledJob(run, 5000);

    // The seed's prediction ("Why is sky blue?") answers; one of the training examples is learned.
    assert.ok(answerText(run.json('answer.json')).length > 0, JSON.stringify(run.json('answer.json')));
    assert.equal(answerText(run.json('answer_number.json')), 'twenty three');

    assertSucceededJob(await endedJob(fixture, example), example, vertexDefaultEpochs);
  });
});
