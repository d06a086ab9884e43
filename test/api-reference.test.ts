// docs/api.md stays true: every route the real server registers (with each verb its custom-method routes
// dispatch), the API versions each `{version}` route answers (asked over HTTP, one request per version), and every
// gRPC method the gRPC server binds, compared with the page's tables in both directions. A failure names each
// entry that is missing from the page or stale in it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { openServices, type Services } from '../src/service/services.js';
import { buildServer } from '../src/api/server.js';
import { serviceDefaults } from '../src/service/config.js';
import { loadDescriptors } from '../src/api/grpc/descriptors.js';
import { statusEncoder } from '../src/api/grpc/status.js';
import { grpcAuth } from '../src/api/grpc/auth.js';
import { servedServices } from '../src/api/grpc/server.js';
import { repoRoot } from './helpers/server.js';

const project = 'api-reference';
/** Every version any surface has: Gemini's, Vertex's, and Google's ones Attune may not serve. */
const candidateVersions = ['v1', 'v1beta', 'v1beta1', 'v1beta2', 'v1beta3', 'v2'];

let dataDir: string;
let services: Services;
let app: FastifyInstance;
let key: string;
const routes: RouteOptions[] = [];

before(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-api-reference-'));
  services = await openServices({ ...serviceDefaults, dataDir, port: 0, keyless: false, concurrency: 0 });
  key = await services.keys.create(project);
  app = await buildServer(services, { onRoute: (route) => void routes.push(route) });
  await app.ready();
});

after(async () => {
  await app?.close();
  await services?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface DocRoute {
  method: string;
  /** As written: `/{version}/tunedModels/{id}:generateContent`. */
  path: string;
  /** The Versions column: [] for `—`. */
  versions: string[];
}

const page = readFileSync(path.join(repoRoot, 'docs', 'api.md'), 'utf8');

/** Table rows whose first cell is `METHOD /path`; the second cell is the versions. */
function documentedRoutes(): DocRoute[] {
  const rows: DocRoute[] = [];
  for (const match of page.matchAll(/^\| `([A-Z]+) (\/[^`]*)` \| ([^|]*) \|/gm)) {
    const versions = match[3]!.trim() === '—' ? [] : match[3]!.split(',').map((v) => v.trim());
    rows.push({ method: match[1]!, path: match[2]!, versions });
  }
  return rows;
}

/** Table rows whose first cell is `package.Service/Method`, `{a,b}` expanded. */
function documentedGrpcMethods(): string[] {
  const methods: string[] = [];
  for (const match of page.matchAll(/^\| `([a-z][\w.{},]*\/\w+)` \|/gm)) {
    const name = match[1]!;
    const braces = /\{([\w,]+)\}/.exec(name);
    if (braces) for (const each of braces[1]!.split(',')) methods.push(name.replace(braces[0], each));
    else methods.push(name);
  }
  return methods;
}

/** One spelling for both sides: every parameter (`:name`, `{name}`, Fastify's `*`) as `{}`. */
const normalize = (routePath: string) => routePath.replace(/\{[^}]*\}/g, '{}').replace(/\/:\w+/g, '/{}').replace(/\/\*$/, '/{}');

/** What the server registered: `METHOD /path`, one per verb for custom-method routes. HEAD is Fastify's copy of each GET. */
function registeredRoutes(): Set<string> {
  const entries = new Set<string>();
  for (const route of routes) {
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      const verbs = route.config?.customMethods;
      // A route that serves both the plain method and verbs lists the plain one as ''.
      if (verbs) for (const verb of verbs) entries.add(`${method} ${normalize(route.url)}${verb ? `:${verb}` : ''}`);
      else entries.add(`${method} ${normalize(route.url)}`);
    }
  }
  return entries;
}

function difference(a: Iterable<string>, b: Set<string>): string[] {
  return [...a].filter((x) => !b.has(x)).sort();
}

function assertSameSets(served: Set<string>, documented: Set<string>, what: string): void {
  const missing = difference(served, documented);
  const stale = difference(documented, served);
  assert.deepEqual(
    { missing, stale },
    { missing: [], stale: [] },
    `docs/api.md is out of date with the ${what}:\n` +
      (missing.length ? `  served but not in docs/api.md:\n${missing.map((m) => `    ${m}`).join('\n')}\n` : '') +
      (stale.length ? `  in docs/api.md but not served:\n${stale.map((s) => `    ${s}`).join('\n')}\n` : ''),
  );
}

/** A concrete path for a documented one: the test's project, a location, Google's publisher, ids that name nothing. */
function concretePath(template: string, version: string): string {
  const values: Record<string, string> = { version, project, location: 'us-central1', publisher: 'google' };
  return template.replace(/\{(\w+)\}/g, (_whole, name: string) => values[name] ?? '1234567890123456789');
}

/** Query parameters a route requires before it looks at the version (its schema checks them first). */
const requiredQuery: Record<string, string> = { '/{version}/tunedModels/{id}/export': '?format=peft' };

/** Whether the server answers this route on this version: anything but "not served" / "Method not found" counts. */
async function answers(route: DocRoute, version: string): Promise<boolean> {
  const reply = await app.inject({
    method: route.method as 'GET',
    url: concretePath(route.path, version) + (requiredQuery[route.path] ?? ''),
    headers: { 'x-goog-api-key': key, ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
    ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { payload: '{}' }),
  });
  if (reply.statusCode !== 404) return true;
  const message: string = reply.json()?.error?.message ?? '';
  return !/is not served|Method not found|are served on/.test(message);
}

describe('docs/api.md', () => {
  test('lists every HTTP route and custom method the server registers, and nothing it does not', () => {
    const documented = documentedRoutes();
    assert.ok(documented.length > 50, `docs/api.md's route tables should parse (found ${documented.length} rows)`);
    const normalized = documented.map((r) => `${r.method} ${normalize(r.path)}`);
    const duplicates = normalized.filter((r, i) => normalized.indexOf(r) !== i);
    assert.deepEqual(duplicates, [], 'docs/api.md lists these routes twice');
    assertSameSets(registeredRoutes(), new Set(normalized), 'routes Fastify registered');
  });

  test("each {version} route's Versions column is exactly the versions the server answers it on", async () => {
    const wrong: string[] = [];
    for (const route of documentedRoutes()) {
      if (!route.path.startsWith('/{version}/')) {
        if (route.versions.length) wrong.push(`${route.method} ${route.path}: has no {version}, so its Versions should be —`);
        continue;
      }
      const served: string[] = [];
      for (const version of candidateVersions) if (await answers(route, version)) served.push(version);
      if (served.join(', ') !== route.versions.join(', ')) {
        wrong.push(`${route.method} ${route.path}: served on ${served.join(', ') || 'none'}, documented ${route.versions.join(', ') || '—'}`);
      }
    }
    assert.deepEqual(wrong, [], `docs/api.md's Versions column is wrong:\n${wrong.join('\n')}`);
  });

  test('lists every gRPC method the gRPC server binds, and nothing it does not', () => {
    const descriptors = loadDescriptors();
    const log = { info() {}, error() {} };
    const auth = grpcAuth(services.keys, false, statusEncoder(descriptors.status), log);
    const bound = new Set<string>();
    for (const [service, handlers] of servedServices(services, descriptors, auth)) {
      for (const method of Object.keys(handlers)) bound.add(`${service.fullName.replace(/^\./, '')}/${method}`);
    }
    assert.ok(bound.size > 30, `expected the gRPC services to bind many methods, got ${bound.size}`);
    const documented = documentedGrpcMethods();
    const duplicates = documented.filter((m, i) => documented.indexOf(m) !== i);
    assert.deepEqual(duplicates, [], 'docs/api.md lists these gRPC methods twice');
    assertSameSets(bound, new Set(documented), 'gRPC methods the server binds');
  });
});
