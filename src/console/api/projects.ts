// The projects this caller may switch the console to (GET /console/api/projects, an Attune extension): on a
// keyless server, every keyless project that holds jobs; with a key, the key's project only.
import { apiJson } from './http';

export interface ProjectEntry {
  projectId: string;
  tunedModelCount: number;
}

export interface ProjectList {
  projects: ProjectEntry[];
  /** Whether the caller came without a key to a keyless server (and so may switch). */
  keyless: boolean;
  /** The caller's project as others name it when they share a tuned model with it. */
  identity: { projectId: string; email: string; projectNumber: string };
}

export function listProjects(signal?: AbortSignal): Promise<ProjectList> {
  return apiJson<ProjectList>('/console/api/projects', { signal });
}
