// A tuning job's log of events, an Attune extension beside its metrics (Vertex has none; OpenAI's fine-tuning
// jobs list theirs): GET …/tuningJobs/{n}/events returns the events derived from the job and its metrics
// and its checkpoints (service/tuning/events.ts), oldest first, with the tokens trained so far and the run's seed.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { jobEvents } from '../../service/tuning/events.js';
import { jobOf, tuningJobsPath } from './tuning-jobs.js';
import { parseVertexVersion, type LocationParams } from './names.js';

export function eventRoutes(app: FastifyInstance, services: Services): void {
  const { store } = services;
  app.get<{ Params: LocationParams & { job: string } }>(`${tuningJobsPath}/:job/events`, async (request) => {
    parseVertexVersion(request.params.version);
    const model = await jobOf(services, request, request.params.job);
    const log = jobEvents(model, await store.metrics(model.id, 'train'), await store.metrics(model.id, 'eval'), await store.checkpoints(model.id), await store.tunedCheckpoints(model.id), {
      waitingForWorker: await services.tuning.waitingForWorker(model),
    });
    return { events: log.events, trainedTokens: String(log.trainedTokens), seed: log.seed };
  });
}
