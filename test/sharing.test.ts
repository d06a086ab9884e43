// Sharing tuned models (issue 11, item 6): Google's PermissionServiceClient (@google-ai/generativelanguage
// v1beta) over REST (fallback) and over gRPC against a real `attune serve` whose tuned models really train
// stories260K, and what each grant lets another project do, checked on every surface it touches: get, list and
// its filters, generateContent, patch, delete, the permissions themselves, transferOwnership, readerProjectNumbers.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { v1beta } from '@google-ai/generativelanguage';
import { OAuth2Client } from 'google-auth-library';
import { projectEmail, projectNumber } from '../src/service/sharing/identity.js';
import { call, repoRoot, useServer, waitFor, type ApiResponse, type ServerFixture } from './helpers/server.js';

const owner = 'sharing-owner';
const reader = 'sharing-reader';
const writer = 'sharing-writer';
const stranger = 'sharing-stranger';

const pairs: { text_input: string; output: string }[] = readFileSync(`${repoRoot}/examples/numbers.jsonl`, 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line));

let fixture: ServerFixture;
const keyOf = (project: string) => fixture.keys[project]!;
const rest = (route: string, project: string, options: { method?: string; body?: unknown } = {}) =>
  call(`${fixture.url}${route}`, { ...options, key: keyOf(project) });

function assertRpcError(reply: ApiResponse, http: number, status: string, message?: RegExp): void {
  assert.equal(reply.status, http, reply.text);
  assert.equal(reply.json?.error?.code, http, reply.text);
  assert.equal(reply.json.error.status, status, reply.text);
  if (message) assert.match(reply.json.error.message, message);
}

/** A Gemini tuned model of `project`, trained to ACTIVE (2 epochs of the number examples). */
async function tunedModel(project: string, displayName: string): Promise<string> {
  const created = await rest('/v1beta/tunedModels', project, {
    method: 'POST',
    body: {
      displayName,
      baseModel: 'models/gemini-1.5-flash-001-tuning',
      tuningTask: { hyperparameters: { epochCount: 2, batchSize: 4 }, trainingData: { examples: { examples: pairs.map((p) => ({ textInput: p.text_input, output: p.output })) } } },
    },
  });
  assert.equal(created.status, 200, created.text);
  const name: string = created.json.metadata.tunedModel;
  const model = await waitFor(`${name} to finish`, async () => {
    const reply = await rest(`/v1beta/${name}`, project);
    return reply.json?.state === 'CREATING' ? undefined : reply.json;
  }, { timeoutMs: 180_000, intervalMs: 200 });
  assert.equal(model.state, 'ACTIVE', JSON.stringify(model));
  return name;
}

const generate = (name: string, project: string) =>
  rest(`/v1beta/${name}:generateContent`, project, {
    method: 'POST',
    body: { contents: [{ role: 'user', parts: [{ text: 'twenty two' }] }], generationConfig: { temperature: 0, maxOutputTokens: 6 } },
  });

const listNames = async (project: string, filter?: string) => {
  const reply = await rest(`/v1beta/tunedModels?pageSize=100${filter ? `&filter=${encodeURIComponent(filter)}` : ''}`, project);
  assert.equal(reply.status, 200, reply.text);
  return ((reply.json.tunedModels ?? []) as { name: string }[]).map((m) => m.name);
};

/** The generated PermissionServiceClient over REST, the key as its bearer token. */
function restClient(project: string) {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: keyOf(project), expiry_date: Date.now() + 3_600_000 });
  const url = new URL(fixture.url);
  type AuthClient = NonNullable<ConstructorParameters<typeof v1beta.PermissionServiceClient>[0]>['authClient'];
  return new v1beta.PermissionServiceClient({
    apiEndpoint: url.hostname, port: Number(url.port), protocol: 'http', fallback: 'rest', authClient: authClient as unknown as AuthClient,
  });
}

/** The same client over gRPC: insecure channel, no fallback; the key goes as metadata on each call. */
const grpcClient = () =>
  new v1beta.PermissionServiceClient({
    servicePath: '127.0.0.1', port: fixture.server.grpcPort!, sslCreds: grpc.credentials.createInsecure(), fallback: false, universeDomain: 'googleapis.com',
  });
const as = (project: string) => ({ otherArgs: { headers: { 'x-goog-api-key': keyOf(project) } } });

async function rejectsWith(promise: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<void> {
  try {
    await promise;
  } catch (error) {
    const e = error as { code: number; details?: string; message: string };
    assert.equal(e.code, code, `expected ${grpc.status[code]}, got ${e.code}: ${e.details ?? e.message}`);
    if (message) assert.match(e.details ?? e.message, message);
    return;
  }
  assert.fail(`expected ${grpc.status[code]}, but the call succeeded`);
}

describe('Sharing tuned models between projects', { concurrency: false }, () => {
  fixture = useServer({ grpc: true, projects: [owner, reader, writer, stranger], concurrency: 2 });
  const models: string[] = [];
  before(async () => {
    models.push(...(await Promise.all([tunedModel(owner, 'shared numbers'), tunedModel(owner, 'transferred numbers')])));
  });
  const shared = () => models[0]!;
  const transferred = () => models[1]!;

  test('without a grant another project sees nothing: get, generate, list, filter, patch, delete and permissions answer as for a missing model', async () => {
    const missing = /^Tuned model tunedModels\/[a-z0-9-]+ does not exist\.$/;
    assertRpcError(await rest(`/v1beta/${shared()}`, stranger), 404, 'NOT_FOUND', missing);
    assertRpcError(await generate(shared(), stranger), 404, 'NOT_FOUND', missing);
    assertRpcError(await rest(`/v1beta/${shared()}?updateMask=displayName`, stranger, { method: 'PATCH', body: { displayName: 'mine' } }), 404, 'NOT_FOUND', missing);
    assertRpcError(await rest(`/v1beta/${shared()}`, stranger, { method: 'DELETE' }), 404, 'NOT_FOUND', missing);
    assertRpcError(await rest(`/v1beta/${shared()}/permissions`, stranger), 404, 'NOT_FOUND', missing);
    assertRpcError(await rest(`/v1beta/${shared()}:transferOwnership`, stranger, { method: 'POST', body: { emailAddress: projectEmail(stranger) } }), 404, 'NOT_FOUND', missing);
    for (const filter of [undefined, 'readers:everyone', 'readers:me', 'owner:me']) assert.deepEqual(await listNames(stranger, filter), [], filter);
    // The owner's own list and the owner's OWNER permission.
    assert.deepEqual((await listNames(owner)).sort(), [...models].sort());
    assert.equal((await generate(shared(), owner)).status, 200);
  });

  test('PermissionServiceClient over REST: create, list, get, patch and delete; a READER to EVERYONE and its revocation', async () => {
    const client = restClient(owner);
    const [owners] = await client.listPermissions({ parent: shared() });
    assert.deepEqual(owners.map((p) => [p.name, p.granteeType, p.emailAddress, p.role]), [
      [`${shared()}/permissions/${projectNumber(owner)}`, 'USER', projectEmail(owner), 'OWNER'],
    ]);

    const [everyone] = await client.createPermission({ parent: shared(), permission: { granteeType: 'EVERYONE', role: 'READER' } });
    assert.equal(everyone.name, `${shared()}/permissions/everyone`);
    assert.equal(everyone.granteeType, 'EVERYONE');
    assert.equal(everyone.role, 'READER');
    assert.ok(!everyone.emailAddress);
    const [got] = await client.getPermission({ name: everyone.name });
    assert.deepEqual([got.name, got.role], [everyone.name, 'READER']);

    // Any valid key may now get and use it, but not change, delete or share it; it shows only under readers:everyone.
    const answer = await generate(shared(), stranger);
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json.candidates[0].content.parts.map((p: { text: string }) => p.text).join(''), (await generate(shared(), owner)).json.candidates[0].content.parts.map((p: { text: string }) => p.text).join(''));
    const seen = await rest(`/v1beta/${shared()}`, stranger);
    assert.equal(seen.status, 200, seen.text);
    assert.equal(seen.json.readerProjectNumbers, undefined, 'a READER does not see who else reads');
    assert.deepEqual(await listNames(stranger), [], 'not in the default list');
    assert.deepEqual(await listNames(stranger, 'readers:everyone'), [shared()]);
    assert.deepEqual(await listNames(stranger, 'numbers readers:everyone'), [shared()], 'with text search');
    assert.deepEqual(await listNames(stranger, 'nothing-like-it readers:everyone'), []);
    assert.deepEqual(await listNames(owner, 'readers:everyone'), [shared()]);
    const denied = /You do not have permission to .* tuned model tunedModels\/.*READER/;
    assertRpcError(await rest(`/v1beta/${shared()}?updateMask=displayName`, stranger, { method: 'PATCH', body: { displayName: 'mine' } }), 403, 'PERMISSION_DENIED', denied);
    assertRpcError(await rest(`/v1beta/${shared()}`, stranger, { method: 'DELETE' }), 403, 'PERMISSION_DENIED', denied);
    assertRpcError(await rest(`/v1beta/${shared()}/permissions`, stranger, { method: 'POST', body: { granteeType: 'EVERYONE', role: 'READER' } }), 403, 'PERMISSION_DENIED', denied);
    assertRpcError(await rest(`/v1beta/${shared()}/permissions/everyone`, stranger, { method: 'DELETE' }), 403, 'PERMISSION_DENIED', denied);
    // Operations, exports and the Vertex views stay the owner's.
    assertRpcError(await rest(`/v1beta/${shared()}/operations`, stranger), 404, 'NOT_FOUND');
    assertRpcError(await rest(`/v1beta/${shared()}/export?format=peft`, stranger), 404, 'NOT_FOUND');

    // EVERYONE can only read; the grantee is immutable and OWNER moves only by transfer.
    await assert.rejects(client.updatePermission({ permission: { name: everyone.name, role: 'WRITER' }, updateMask: { paths: ['role'] } }), /EVERYONE can only be granted READER/);
    await assert.rejects(client.createPermission({ parent: shared(), permission: { granteeType: 'EVERYONE', role: 'READER' } }), /already exists/);

    // Revoking ends access at once.
    await client.deletePermission({ name: everyone.name });
    assertRpcError(await generate(shared(), stranger), 404, 'NOT_FOUND');
    assertRpcError(await rest(`/v1beta/${shared()}`, stranger), 404, 'NOT_FOUND');
    assert.deepEqual(await listNames(stranger, 'readers:everyone'), []);
    await assert.rejects(client.getPermission({ name: everyone.name }), /does not exist/);

    // A project by its identity email: READER, then WRITER (patch), listed and paged.
    const [forReader] = await client.createPermission({ parent: shared(), permission: { granteeType: 'USER', emailAddress: projectEmail(reader).toUpperCase(), role: 'READER' } });
    assert.equal(forReader.name, `${shared()}/permissions/${projectNumber(reader)}`);
    assert.equal(forReader.emailAddress, projectEmail(reader));
    const [forWriter] = await client.createPermission({ parent: shared(), permission: { granteeType: 'GROUP', emailAddress: projectEmail(writer), role: 'READER' } });
    const [promoted] = await client.updatePermission({ permission: { name: forWriter.name, role: 'WRITER' }, updateMask: { paths: ['role'] } });
    assert.equal(promoted.role, 'WRITER');
    assert.equal(promoted.granteeType, 'GROUP');
    const [all] = await client.listPermissions({ parent: shared() });
    assert.deepEqual(all.map((p) => `${p.emailAddress}:${p.role}`), [`${projectEmail(owner)}:OWNER`, `${projectEmail(reader)}:READER`, `${projectEmail(writer)}:WRITER`]);
    const [firstPage, , response] = await client.listPermissions({ parent: shared(), pageSize: 2 }, { autoPaginate: false });
    assert.equal(firstPage.length, 2);
    assert.ok(response?.nextPageToken);
    await client.close();
  });

  test('grants name projects: a READER uses, a WRITER updates and shares, neither deletes; readerProjectNumbers is their view', async () => {
    // The READER: get and generate, listed by default and under readers:me, never writers:me; no patch, no delete.
    assert.equal((await rest(`/v1beta/${shared()}`, reader)).status, 200);
    assert.equal((await generate(shared(), reader)).status, 200);
    assert.deepEqual(await listNames(reader), [shared()]);
    assert.deepEqual(await listNames(reader, 'readers:me'), [shared()]);
    assert.deepEqual(await listNames(reader, 'writers:me'), []);
    assert.deepEqual(await listNames(reader, 'owner:me'), []);
    assertRpcError(await rest(`/v1beta/${shared()}?updateMask=description`, reader, { method: 'PATCH', body: { description: 'x' } }), 403, 'PERMISSION_DENIED');
    assertRpcError(await rest(`/v1beta/${shared()}/permissions`, reader), 403, 'PERMISSION_DENIED');

    // The WRITER: patch, list permissions, share; not delete, not transfer.
    const patched = await rest(`/v1beta/${shared()}?updateMask=description`, writer, { method: 'PATCH', body: { description: 'edited by the writer' } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal((await rest(`/v1beta/${shared()}`, owner)).json.description, 'edited by the writer');
    assert.deepEqual(await listNames(writer, 'writers:me'), [shared()]);
    assertRpcError(await rest(`/v1beta/${shared()}`, writer, { method: 'DELETE' }), 403, 'PERMISSION_DENIED', /delete .* takes the OWNER role/);
    assertRpcError(await rest(`/v1beta/${shared()}:transferOwnership`, writer, { method: 'POST', body: { emailAddress: projectEmail(writer) } }), 403, 'PERMISSION_DENIED');
    const byWriter = await rest(`/v1beta/${shared()}/permissions`, writer, { method: 'POST', body: { granteeType: 'USER', emailAddress: projectEmail(stranger), role: 'READER' } });
    assert.equal(byWriter.status, 200, byWriter.text);
    assert.equal((await generate(shared(), stranger)).status, 200);

    // readerProjectNumbers: the READER projects' numbers (int64s, strings in JSON), shown to those who may share.
    const seen = await rest(`/v1beta/${shared()}`, owner);
    assert.deepEqual([...seen.json.readerProjectNumbers].sort(), [projectNumber(reader), projectNumber(stranger)].sort());
    // Patching it makes exactly those projects READERs: the stranger's grant goes, the WRITER stays.
    const narrowed = await rest(`/v1beta/${shared()}?updateMask=readerProjectNumbers`, owner, { method: 'PATCH', body: { readerProjectNumbers: [projectNumber(reader)] } });
    assert.equal(narrowed.status, 200, narrowed.text);
    assert.deepEqual(narrowed.json.readerProjectNumbers, [projectNumber(reader)]);
    assert.equal((await rest(`/v1beta3/${shared()}`, owner)).json.readerProjectNumbers, undefined, "v1beta3's TunedModel has no such field");
    assertRpcError(await generate(shared(), stranger), 404, 'NOT_FOUND');
    assert.equal((await rest(`/v1beta/${shared()}/permissions/${projectNumber(writer)}`, owner)).json.role, 'WRITER');

    // The owner alone deletes: the model is still there after every refusal above.
    assert.equal((await rest(`/v1beta/${shared()}`, owner)).status, 200);
  });

  test('bad grantees are 400s in Google format, naming the field', async () => {
    const route = `/v1beta/${shared()}/permissions`;
    const cases: [unknown, RegExp, string][] = [
      [{ granteeType: 'USER', emailAddress: 'alice@example.com', role: 'READER' }, /names no project here/, 'permission.email_address'],
      [{ granteeType: 'USER', emailAddress: `no-such-project@${projectEmail('x').split('@')[1]}`, role: 'READER' }, /names no project here/, 'permission.email_address'],
      [{ granteeType: 'USER', role: 'READER' }, /email_address is required/, 'permission.email_address'],
      [{ granteeType: 'EVERYONE', emailAddress: projectEmail(reader), role: 'READER' }, /must not be set/, 'permission.email_address'],
      [{ granteeType: 'EVERYONE', role: 'WRITER' }, /EVERYONE can only be granted READER/, 'permission.role'],
      [{ granteeType: 'USER', emailAddress: projectEmail(stranger), role: 'OWNER' }, /transferOwnership/, 'permission.role'],
      [{ granteeType: 'USER', emailAddress: projectEmail(stranger) }, /role must be one of/, 'permission.role'],
      [{ granteeType: 'ROBOT', emailAddress: projectEmail(stranger), role: 'READER' }, /grantee_type must be one of/, 'permission.grantee_type'],
      [{ granteeType: 'USER', emailAddress: projectEmail(owner), role: 'READER' }, /already owns/, 'permission.email_address'],
    ];
    for (const [body, message, field] of cases) {
      const reply = await rest(route, owner, { method: 'POST', body });
      assertRpcError(reply, 400, 'INVALID_ARGUMENT', message);
      const violations = reply.json.error.details?.find((d: { '@type': string }) => d['@type'].endsWith('BadRequest'))?.fieldViolations ?? [];
      assert.deepEqual(violations.map((v: { field: string }) => v.field), [field], JSON.stringify(body));
    }
    assertRpcError(await rest(`${route}/${projectNumber(reader)}?updateMask=emailAddress`, owner, { method: 'PATCH', body: { emailAddress: projectEmail(stranger) } }), 400, 'INVALID_ARGUMENT', /updatable: role/);
    assertRpcError(await rest(`${route}/${projectNumber(reader)}`, owner, { method: 'PATCH', body: { role: 'WRITER' } }), 400, 'INVALID_ARGUMENT', /update_mask is required/);
    assertRpcError(await rest(`${route}/${projectNumber(owner)}?updateMask=role`, owner, { method: 'PATCH', body: { role: 'READER' } }), 400, 'INVALID_ARGUMENT', /transferOwnership/);
    assertRpcError(await rest(`${route}/${projectNumber(owner)}`, owner, { method: 'DELETE' }), 400, 'FAILED_PRECONDITION');
    assertRpcError(await rest(`${route}/123`, owner), 404, 'NOT_FOUND', /Permission .* does not exist/);
    for (const numbers of [['123456789012'], ['not a number'], [projectNumber('never-seen-project')]]) {
      const reply = await rest(`/v1beta/${shared()}?updateMask=readerProjectNumbers`, owner, { method: 'PATCH', body: { readerProjectNumbers: numbers } });
      assertRpcError(reply, 400, 'INVALID_ARGUMENT', /is not the number of a project here/);
    }
    assertRpcError(await rest(`/v1beta/${shared()}:transferOwnership`, owner, { method: 'POST', body: { emailAddress: 'bob@example.com' } }), 400, 'INVALID_ARGUMENT', /names no project here/);
    assertRpcError(await rest(`/v1beta/${shared()}:transferOwnership`, owner, { method: 'POST', body: {} }), 400, 'INVALID_ARGUMENT', /email_address is required/);
    assertRpcError(await rest('/v1beta/tunedModels?filter=writers:everyone', owner), 400, 'INVALID_ARGUMENT', /filter operator/);
    assertRpcError(await rest(`/v1/${shared()}/permissions`, owner), 404, 'NOT_FOUND');
  });

  test('PermissionServiceClient over gRPC: the same permissions; transferOwnership makes the new owner OWNER, the old one a WRITER', async () => {
    const client = grpcClient();
    const [listed] = await client.listPermissions({ parent: shared() }, as(owner));
    assert.deepEqual(listed.map((p) => `${p.emailAddress}:${p.role}`), [`${projectEmail(owner)}:OWNER`, `${projectEmail(reader)}:READER`, `${projectEmail(writer)}:WRITER`]);
    const [got] = await client.getPermission({ name: `${shared()}/permissions/${projectNumber(reader)}` }, as(writer));
    assert.equal(got.role, 'READER');
    await rejectsWith(client.listPermissions({ parent: shared() }, as(stranger)), grpc.status.NOT_FOUND);
    await rejectsWith(client.listPermissions({ parent: shared() }, as(reader)), grpc.status.PERMISSION_DENIED);
    await rejectsWith(
      client.createPermission({ parent: shared(), permission: { granteeType: 'USER', emailAddress: 'carol@example.com', role: 'READER' } }, as(owner)),
      grpc.status.INVALID_ARGUMENT,
      /names no project here/,
    );

    // Share the second model with everyone over gRPC, then hand it to the reader project.
    const [everyone] = await client.createPermission({ parent: transferred(), permission: { granteeType: 'EVERYONE', role: 'READER' } }, as(owner));
    assert.equal(everyone.name, `${transferred()}/permissions/everyone`);
    assert.equal((await generate(transferred(), stranger)).status, 200);
    await rejectsWith(client.transferOwnership({ name: transferred(), emailAddress: projectEmail(reader) }, as(reader)), grpc.status.PERMISSION_DENIED);
    await client.transferOwnership({ name: transferred(), emailAddress: projectEmail(reader) }, as(owner));

    const [after] = await client.listPermissions({ parent: transferred() }, as(reader));
    assert.deepEqual(after.map((p) => `${p.emailAddress}:${p.role}`).sort(), [`${projectEmail(reader)}:OWNER`, `${projectEmail(owner)}:WRITER`, 'undefined:READER'].sort());
    assert.equal(after[0]!.role, 'OWNER');
    // The old owner still uses (and may update) the model, but may not delete it; the new owner lists it as its own.
    assert.equal((await generate(transferred(), owner)).status, 200);
    assertRpcError(await rest(`/v1beta/${transferred()}`, owner, { method: 'DELETE' }), 403, 'PERMISSION_DENIED');
    await rejectsWith(client.transferOwnership({ name: transferred(), emailAddress: projectEmail(owner) }, as(owner)), grpc.status.PERMISSION_DENIED);
    assert.deepEqual(await listNames(reader, 'owner:me'), [transferred()]);
    assert.deepEqual(await listNames(owner, 'owner:me'), [shared()]);
    assert.ok((await listNames(owner)).includes(transferred()), 'the old owner lists it by default, as a WRITER');
    // Vertex shows the tuning job under its owner's project.
    const number = (await rest(`/v1beta/${transferred()}`, reader)).json.name && (await call(`${fixture.url}/v1/projects/${reader}/locations/us-central1/tuningJobs`, { key: keyOf(reader) })).json.tuningJobs;
    assert.equal(number?.length, 1);

    // Revoking everyone's grant over gRPC ends the stranger's access at once; the new owner deletes.
    await client.deletePermission({ name: everyone.name }, as(owner)); // the old owner is a WRITER: it may still share
    assertRpcError(await generate(transferred(), stranger), 404, 'NOT_FOUND');
    const deleted = await rest(`/v1beta/${transferred()}`, reader, { method: 'DELETE' });
    assert.equal(deleted.status, 200, deleted.text);
    assertRpcError(await rest(`/v1beta/${transferred()}`, owner), 404, 'NOT_FOUND');
    await client.close();
  });
});
