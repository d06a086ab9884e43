// A tuning job's metrics, an Attune extension (Vertex keeps them in Experiments and TensorBoard, vertex-api.md
// §7.3): GET …/tuningJobs/{n}/metrics returns every point so far as TimeSeriesData plus the step at which each
// epoch ended; with ?alt=sse it streams, first everything so far, then each new point as it is recorded and
// the TuningJob whenever its state changes, and ends once the job has ended. The stream follows the database
// (woken by the event bus), so it works on any API server, whichever worker trains the job.
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import type { ServiceEvent } from '../../service/store/events.js';
import type { StepMetric } from '../../service/tuning/tuned-model.js';
import { wireOptions } from '../proto-json.js';
import { jobOf, tuningJobsPath, tuningJobWithCheckpoints } from './tuning-jobs.js';
import { parseVertexVersion, type LocationParams } from './names.js';
import { epochEnds, jobStateOf, terminalStates, timeSeriesWire } from './wire.js';

/** Proxies drop idle connections; a comment line every so often keeps a quiet stream open (and re-reads, in case an event was missed). */
const keepAliveMs = 15_000;

export function metricRoutes(app: FastifyInstance, services: Services): void {
  const { store, tuning } = services;

  app.get<{ Params: LocationParams & { job: string }; Querystring: { alt?: string } }>(`${tuningJobsPath}/:job/metrics`, async (request, reply) => {
    const model = await jobOf(services, request, request.params.job);
    const options = wireOptions(request);
    const version = parseVertexVersion(request.params.version);
    const train = await store.metrics(model.id, 'train');
    const evals = await store.metrics(model.id, 'eval');
    const snapshot = { timeSeriesData: timeSeriesWire(train, evals, model.tuningMethod), epochs: epochEnds(train) };
    if (request.query.alt !== 'sse') return snapshot;

    const out = new PassThrough();
    const send = (event: object) => out.write(`data: ${JSON.stringify(event)}\r\n\r\n`);
    let lastTrain = train.at(-1);
    let lastEval = evals.at(-1)?.step ?? 0;
    let state = jobStateOf(model);
    let closed = false;
    // The job as GET returns it (checkpoints included once it succeeded): a client replaces its copy with this one.
    send({ ...snapshot, tuningJob: await tuningJobWithCheckpoints(services, model, options, version) });

    // What was recorded since the last read, then the state; one read at a time, in order. The state is read
    // first: a run records its last points before its outcome, so the points read after a final state are all
    // of them (read the other way round, points recorded between the two reads were never sent).
    const catchUp = async () => {
      const current = await store.get(model.id);
      const newTrain = (await store.metrics(model.id, 'train')).filter((m) => m.step > (lastTrain?.step ?? 0));
      const newEvals = (await store.metrics(model.id, 'eval')).filter((m) => m.step > lastEval);
      if (closed) return;
      for (const metric of newTrain) sendPoint(metric, 'train');
      for (const metric of newEvals) sendPoint(metric, 'eval');
      if (!current) return close(); // deleted
      if (jobStateOf(current) !== state) {
        state = jobStateOf(current);
        send({ tuningJob: await tuningJobWithCheckpoints(services, current, options, version) });
      }
      if (terminalStates.includes(state)) close();
    };
    const sendPoint = (metric: StepMetric, kind: 'train' | 'eval') => {
      const points = kind === 'train' ? [metric] : [];
      send({ timeSeriesData: timeSeriesWire(points, kind === 'eval' ? [metric] : [], model.tuningMethod), epochs: epochEnds(points, lastTrain?.epoch ?? 0) });
      if (kind === 'train') lastTrain = metric;
      else lastEval = metric.step;
    };
    let reading: Promise<void> = Promise.resolve();
    let pending = false;
    const follow = () => {
      if (pending || closed) return;
      pending = true;
      reading = reading.then(async () => {
        pending = false;
        await catchUp().catch(() => {}); // the database is away: the next event or keep-alive reads again
      });
    };
    const onEvent = (event: ServiceEvent) => {
      if (event.type === 'resync' || ('id' in event && event.id === model.id && event.type !== 'cancel')) follow();
    };
    const unsubscribe = tuning.events.subscribe(onEvent);
    const keepAlive = setInterval(() => {
      out.write(': keep-alive\r\n\r\n');
      follow();
    }, keepAliveMs);
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepAlive);
      unsubscribe();
      out.end();
    };
    reply.raw.once('close', close);
    if (terminalStates.includes(state)) close();
    else follow(); // anything recorded between the snapshot and the subscription

    reply.type('text/event-stream').header('cache-control', 'no-cache');
    return reply.send(out);
  });
}
