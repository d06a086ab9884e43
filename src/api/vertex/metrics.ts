// A tuning job's metrics, an Attune extension (Vertex keeps them in Experiments and TensorBoard, vertex-api.md
// §7.3): GET …/tuningJobs/{n}/metrics returns every point so far as TimeSeriesData plus the step at which each
// epoch ended; with ?alt=sse it streams, first everything so far, then each new point as it is recorded and
// the TuningJob whenever its state changes, and ends once the job has ended.
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import type { StepMetric, TunedModel } from '../../service/tuning/tuned-model.js';
import { wireOptions } from '../proto-json.js';
import { jobOf, tuningJobsPath } from './tuning-jobs.js';
import { parseVertexVersion, type LocationParams } from './names.js';
import { epochEnds, jobStateOf, terminalStates, timeSeriesWire, tuningJobWire } from './wire.js';

/** Proxies drop idle connections; a comment line every so often keeps a quiet stream open. */
const keepAliveMs = 15_000;

export function metricRoutes(app: FastifyInstance, services: Services): void {
  const { store, tuning } = services;

  app.get<{ Params: LocationParams & { job: string }; Querystring: { alt?: string } }>(`${tuningJobsPath}/:job/metrics`, async (request, reply) => {
    const model = await jobOf(services, request, request.params.job);
    const options = wireOptions(request);
    const version = parseVertexVersion(request.params.version);
    const train = await store.metrics(model.id, 'train');
    const snapshot = { timeSeriesData: timeSeriesWire(train, await store.metrics(model.id, 'eval')), epochs: epochEnds(train) };
    if (request.query.alt !== 'sse') return snapshot;

    const out = new PassThrough();
    const send = (event: object) => out.write(`data: ${JSON.stringify(event)}\r\n\r\n`);
    let epoch = train.at(-1)?.epoch ?? 0;
    let state = jobStateOf(model);
    send({ ...snapshot, tuningJob: tuningJobWire(model, options, version) });

    const onMetric = (id: string, metric: StepMetric) => {
      if (id !== model.id) return;
      const train = metric.kind === 'train' ? [metric] : [];
      send({ timeSeriesData: timeSeriesWire(train, metric.kind === 'eval' ? [metric] : []), epochs: epochEnds(train, epoch) });
      if (metric.kind === 'train') epoch = metric.epoch;
    };
    const onChange = (changed: TunedModel) => {
      if (changed.id !== model.id || jobStateOf(changed) === state) return;
      state = jobStateOf(changed);
      send({ tuningJob: tuningJobWire(changed, options, version) });
      if (terminalStates.includes(state)) close();
    };
    const onDeleted = (id: string) => id === model.id && close();
    const keepAlive = setInterval(() => out.write(': keep-alive\r\n\r\n'), keepAliveMs);
    const close = () => {
      clearInterval(keepAlive);
      tuning.events.off('metric', onMetric).off('change', onChange).off('deleted', onDeleted);
      out.end();
    };
    tuning.events.on('metric', onMetric).on('change', onChange).on('deleted', onDeleted);
    reply.raw.once('close', close);
    if (terminalStates.includes(state)) close();

    reply.type('text/event-stream').header('cache-control', 'no-cache');
    return reply.send(out);
  });
}
