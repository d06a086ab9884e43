// Issue 9, findings 12 and 13, against a real `attune serve`: another project's tuned model answers exactly
// like one that does not exist, on every route that names one (AIP-193: existence does not leak across
// projects); no response carries a server path; a negative pageSize is a 400 on every list; and AIP-160
// filters on prototype keys (constructor, __proto__, …) are 400s or plain misses, never 500s.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { call, repoRoot, useServer, waitFor } from './helpers/server.js';

const alpha = 'iso-alpha';
const beta = 'iso-beta';
const missingId = 'no-such-model-0000';
const missingNumber = '1234567890123456789';

describe('isolation between projects', () => {
  const fixture = useServer({ projects: [alpha, beta] });
  const api = (route: string, project: string, options: Parameters<typeof call>[1] = {}) =>
    call(`${fixture.url}${route}`, { key: fixture.keys[project], ...options });
  let id = '';
  let number = '';
  let operation = '';

  test('setup: alpha tunes a model to ACTIVE', { timeout: 120_000 }, async () => {
    const created = await api('/v1beta/tunedModels', alpha, {
      method: 'POST',
      body: {
        displayName: 'alpha secret',
        baseModel: 'models/gemini-1.5-flash-001-tuning',
        tuningTask: { hyperparameters: { epochCount: 1, batchSize: 1 }, trainingData: { examples: { examples: [{ textInput: '1', output: '2' }] } } },
      },
    });
    assert.equal(created.status, 200, created.text);
    id = created.json.metadata.tunedModel.split('/')[1];
    operation = created.json.name.split('/').at(-1);
    const model = await waitFor('ACTIVE', async () => {
      const r = await api(`/v1beta/tunedModels/${id}`, alpha);
      return r.json?.state === 'ACTIVE' ? r.json : undefined;
    });
    const job = await api(`/v1/projects/${alpha}/locations/us-central1/tuningJobs?filter=${encodeURIComponent('display_name:"alpha secret"')}`, alpha);
    number = job.json.tuningJobs[0].name.split('/').at(-1);
    assert.match(number, /^\d{19}$/);
    assert.equal(model.state, 'ACTIVE');
  });

  test('beta gets, for each of alpha\'s resources, exactly what it gets for a missing one', async () => {
    const generate = { contents: [{ parts: [{ text: '1' }] }] };
    /** [method, route with {id} and {n}, body] */
    const routes: [string, string, unknown?][] = [
      ['GET', '/v1beta/tunedModels/{id}'],
      ['GET', '/v1beta3/tunedModels/{id}'],
      ['GET', '/v1beta/tunedModels/{n}'],
      ['PATCH', '/v1beta/tunedModels/{id}?updateMask=description', { description: 'mine now' }],
      ['DELETE', '/v1beta/tunedModels/{id}'],
      ['POST', '/v1beta/tunedModels/{id}:cancel', {}],
      ['POST', '/v1beta/tunedModels/{id}:generateContent', generate],
      ['POST', '/v1beta/tunedModels/{id}:streamGenerateContent?alt=sse', generate],
      ['POST', '/v1beta/tunedModels/{id}:countTokens', generate],
      ['POST', '/v1beta3/tunedModels/{id}:generateText', { prompt: { text: '1' } }],
      ['GET', '/v1/tunedModels/{id}/operations'],
      ['GET', `/v1/tunedModels/{id}/operations/${operation}`],
      ['POST', `/v1/tunedModels/{id}/operations/${operation}:cancel`, {}],
      ['DELETE', `/v1/operations/tunedModels/{id}/operations/${operation}`],
      ['GET', `/v1/projects/${beta}/locations/us-central1/tuningJobs/{n}`],
      ['POST', `/v1/projects/${beta}/locations/us-central1/tuningJobs/{n}:cancel`, {}],
      ['GET', `/v1/projects/${beta}/locations/us-central1/tuningJobs/{n}/metrics`],
      ['POST', `/v1/projects/${beta}/locations/us-central1/endpoints/{n}:generateContent`, generate],
      ['POST', '/v1/endpoints/{n}:countTokens', generate],
      ['POST', `/v1beta1/projects/${beta}/locations/us-central1/endpoints/{n}:computeTokens`, generate],
      ['POST', '/v1/endpoints/{n}:computeTokens', generate],
      ['GET', `/v1/projects/${beta}/locations/us-central1/endpoints/{n}`],
      ['DELETE', `/v1/projects/${beta}/locations/us-central1/endpoints/{n}`],
      ['GET', `/v1/projects/${beta}/locations/us-central1/models/{n}`],
      ['GET', `/v1beta1/projects/${beta}/locations/us-central1/models/{n}@1`],
      ['DELETE', `/v1/projects/${beta}/locations/us-central1/models/{n}`],
      ['GET', '/v1beta/tunedModels/{id}/export?format=peft'],
      ['GET', '/v1beta/tunedModels/{n}/export?format=gguf'],
    ];
    for (const [method, route, body] of routes) {
      const theirs = await api(route.replace('{id}', id).replace('{n}', number), beta, { method, body });
      const none = await api(route.replace('{id}', missingId).replace('{n}', missingNumber), beta, { method, body });
      const where = `${method} ${route}: ${theirs.text}`;
      assert.equal(theirs.status, 404, where);
      assert.equal(theirs.status, none.status, where);
      const scrub = (text: string, ...ids: string[]) => ids.reduce((t, x) => t.split(x).join('<id>'), text);
      assert.equal(scrub(theirs.text, id, number), scrub(none.text, missingId, missingNumber), where);
    }
    // Through it all alpha's model stayed as it was.
    const still = await api(`/v1beta/tunedModels/${id}`, alpha);
    assert.equal(still.json.state, 'ACTIVE');
    assert.equal(still.json.description ?? '', '');
  });

  test('no response carries a server path: models list and get, tuned models, jobs', async () => {
    const dataDir = fixture.server.dataDir;
    const answers = [
      await api('/v1beta/models?pageSize=1000', alpha),
      await api('/v1/models', alpha),
      await api('/v1beta/models/stories260K', alpha),
      await api('/v1beta/models/gemini-1.5-flash-001-tuning', alpha),
      await api(`/v1beta/tunedModels/${id}`, alpha),
      await api('/v1beta/tunedModels', alpha),
      await api(`/v1/projects/${alpha}/locations/us-central1/tuningJobs`, alpha),
      await api(`/v1/projects/${alpha}/locations/us-central1/tuningJobs/${number}/metrics`, alpha),
    ];
    for (const answer of answers) {
      assert.equal(answer.status, 200, answer.text);
      for (const serverPath of [repoRoot, dataDir, path.join(repoRoot, 'models'), '/tmp/', '/home/', '/root/']) {
        assert.ok(!answer.text.includes(serverPath), `${serverPath} in ${answer.text.slice(0, 2000)}`);
      }
    }
    const stories = answers[2]!.json;
    assert.equal(stories.name, 'models/stories260K');
    assert.match(stories.description, /stories260K/);
  });

  test('pageSize=-1 is 400 on every list', async () => {
    for (const route of [
      '/v1beta/tunedModels',
      '/v1beta3/tunedModels',
      '/v1/operations',
      '/v1beta/models',
      `/v1/projects/${alpha}/locations/us-central1/tuningJobs`,
      `/v1beta1/projects/${alpha}/locations/us-central1/tuningJobs`,
      `/v1/projects/${alpha}/locations/us-central1/models`,
      `/v1beta1/projects/${alpha}/locations/us-central1/endpoints`,
    ]) {
      for (const query of ['pageSize=-1', 'page_size=-1', 'pageSize=-100000']) {
        const r = await api(`${route}?${query}`, alpha);
        assert.equal(r.status, 400, `${route}?${query}: ${r.text}`);
        assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
        assert.match(r.json.error.message, /pageSize must be >= 0/);
      }
      assert.equal((await api(`${route}?pageSize=0`, alpha)).status, 200, route);
    }
  });

  test('AIP-160 filters on prototype keys: 400 for unknown fields, a plain miss for labels', async () => {
    const jobs = (filter: string) => api(`/v1/projects/${alpha}/locations/us-central1/tuningJobs?filter=${encodeURIComponent(filter)}`, alpha);
    for (const filter of ['constructor:x', 'hasOwnProperty:x', '__proto__:x', 'toString = "a"', 'valueOf:*', 'constructor.name:x', 'display_name = "\\x"', 'state = "\\u12"']) {
      const r = await jobs(filter);
      assert.equal(r.status, 400, `${filter}: ${r.text}`);
      assert.equal(r.json.error.status, 'INVALID_ARGUMENT', filter);
    }
    for (const filter of ['labels.constructor:x', 'labels.__proto__:*', 'labels.hasOwnProperty = "x"', 'labels.toString:*', 'NOT labels.constructor:*']) {
      const r = await jobs(filter);
      assert.equal(r.status, 200, `${filter}: ${r.text}`);
      const expected = filter.startsWith('NOT') ? 1 : 0;
      assert.equal(r.json.tuningJobs?.length ?? 0, expected, `${filter}: ${r.text}`);
    }
  });
});
