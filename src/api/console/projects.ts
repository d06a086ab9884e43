// GET /console/api/projects: the projects the caller may switch the console to, an Attune extension (a
// job created under projects/my-project never shows while the console looks at `local`). Authorised like
// every route. A caller with a key acts for its key's project only, so that is the one listed. On a keyless
// server (loopback only) a caller without a key may act for any project that has no keys: those holding tuned
// models are listed, with how many, beside the caller's own. Projects with keys are never named to it. The answer
// also gives the caller's own project's identity (email and project number), which others share models with.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../service/services.js';
import { identityOf } from '../../service/sharing/identity.js';

export interface ProjectEntry {
  projectId: string;
  tunedModelCount: number;
}

export function projectRoutes(app: FastifyInstance, services: Pick<Services, 'config' | 'keys' | 'store'>): void {
  app.get('/console/api/projects', async (request) => {
    const { keys, store, config } = services;
    const counts = new Map((await store.projects()).map(({ project, count }) => [project, count]));
    // Keyless callers never act for a project with keys, so a caller acting for one came with its key.
    const withKey = await keys.hasProject(request.project);
    const keyless: string[] = [];
    if (config.keyless && !withKey) {
      for (const p of new Set([request.project, ...counts.keys()])) if (!(await keys.hasProject(p))) keyless.push(p);
    }
    const listed = config.keyless && !withKey ? keyless.sort() : [request.project];
    const projects: ProjectEntry[] = listed.map((projectId) => ({ projectId, tunedModelCount: counts.get(projectId) ?? 0 }));
    // Who the caller's project is to others: the email and number that share a tuned model with it.
    return { projects, keyless: config.keyless && !withKey, identity: identityOf(request.project) };
  });
}
