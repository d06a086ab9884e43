// Issue 9, finding 9: API keys leaked into the request log (?key= and ?access_token= verbatim), and a key
// could not be revoked. Against a real `attune serve` logging every request (level info): no log line holds
// a key however it was sent, `attune keys revoke` (by key or by the id `keys list` shows) and expiry
// (`--expires-in`, `--expires`) take effect on the next request with Google's 401, and a data dir from
// before this change gets the new columns with its keys still valid.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { call, runCli, sleep, useServer } from './helpers/server.js';
import { rawRequest, type RawRequest } from './helpers/raw-http.js';
import { Database, databaseTarget } from '../src/service/store/database.js';
import { KeyStore } from '../src/service/auth/keys.js';
import { redactSecrets, redactUrl } from '../src/api/log.js';

const list = '/v1beta/tunedModels';

describe('no log line contains a key', () => {
  const fixture = useServer({ projects: ['logs-alpha'], logLevel: 'info' });

  test('?key=, ?access_token=, x-goog-api-key and Authorization, valid or not, on every kind of answer', async () => {
    const key = fixture.keys['logs-alpha']!;
    const wrong = 'atk_thisIsNotAKeyButLooksLikeOne1234567890';
    const secrets = [key, wrong, 'ya29.some-oauth-token-value'];
    const requests: RawRequest[] = [
      { path: `${list}?key=${key}` },
      { path: `${list}?key=${wrong}` },
      { path: `${list}?access_token=${key}` },
      { path: `${list}?pageSize=2&key=${key}&alt=json` },
      { path: `${list}?k%65y=${key}` },
      { path: `${list}?accessToken=${key}` },
      { path: `${list}?access_token=ya29.some-oauth-token-value` },
      { path: `/v1beta/tunedModels/nope?key=${key}` },
      { path: `/v1beta/nothing?key=${key}` },
      { path: list, headers: { 'x-goog-api-key': key } },
      { path: list, headers: { authorization: `Bearer ${key}` } },
      { path: list, headers: { authorization: `Bearer ${wrong}` } },
      { path: `/v1beta/models/stories260K:countTokens?key=${key}`, method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{' },
      { path: `/v1beta/models/stories260K:countTokens?key=${key}`, method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"contents": "${key}"` },
    ];
    for (const request of requests) await rawRequest(fixture.url, request);
    await sleep(300); // the child's log lines reach the pipe
    const logs = fixture.server.logs();
    // The requests were logged, with the URLs redacted.
    assert.match(logs, /"url":"\/v1beta\/tunedModels\?key=\[REDACTED\]"/);
    assert.match(logs, /"url":"\/v1beta\/tunedModels\?access_token=\[REDACTED\]"/);
    assert.match(logs, /"url":"\/v1beta\/tunedModels\?pageSize=2&key=\[REDACTED\]&alt=json"/);
    assert.match(logs, /"url":"\/v1beta\/tunedModels\?k%65y=\[REDACTED\]"/);
    assert.ok(logs.split('\n').filter((l) => l.includes('"msg":"incoming request"')).length >= requests.length, logs);
    for (const secret of secrets) assert.ok(!logs.includes(secret), `a log line contains ${secret}:\n${logs}`);
  });

  test('the redaction helpers', () => {
    assert.equal(redactUrl('/a?key=1&b=2&access_token=3&oauth_token=4&pageToken=5'), '/a?key=[REDACTED]&b=2&access_token=[REDACTED]&oauth_token=[REDACTED]&pageToken=5');
    assert.equal(redactUrl('/a?%6Bey=x'), '/a?%6Bey=[REDACTED]');
    assert.equal(redactUrl('/a'), '/a');
    assert.equal(redactSecrets('failed GET /x?key=abc&alt=sse for atk_AbCdEfGh12345678'), 'failed GET /x?key=[REDACTED]&alt=sse for [REDACTED]');
  });
});

describe('keys revoke and expiry', () => {
  const fixture = useServer({ projects: ['keys-alpha'] });
  const dataDir = () => fixture.server.dataDir;
  const cli = (...args: string[]) => runCli(['keys', ...args, '--data-dir', dataDir()]);
  const get = (key: string) => call(`${fixture.url}${list}`, { key });
  const lapsed = (message: RegExp) => (r: Awaited<ReturnType<typeof get>>) => {
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error.status, 'UNAUTHENTICATED', r.text);
    assert.match(r.json.error.message, message);
  };

  test('revoke by id prefix from `keys list`: the next request gets 401; other keys keep working', async () => {
    const doomed = (await cli('create', '--project', 'keys-alpha', '--label', 'laptop')).stdout.trim();
    assert.equal((await get(doomed)).status, 200);
    const listed = await cli('list');
    assert.equal(listed.code, 0, listed.stderr);
    const line = listed.stdout.split('\n').find((l) => l.endsWith('\tlaptop'));
    assert.ok(line, listed.stdout);
    const [id, project, , expires, state] = line.split('\t');
    assert.match(id!, /^[0-9a-f]{12}$/);
    assert.equal(project, 'keys-alpha');
    assert.equal(expires, 'never');
    assert.equal(state, 'active');
    assert.ok(!listed.stdout.includes(doomed), 'keys list never shows a key');

    const revoked = await cli('revoke', id!.slice(0, 8));
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`^revoked ${id} \\(project keys-alpha, laptop\\)`));
    lapsed(/^API key revoked\./)(await get(doomed));
    // Every way of sending it.
    lapsed(/revoked/)(await call(`${fixture.url}${list}?key=${doomed}`));
    lapsed(/revoked/)(await call(`${fixture.url}${list}`, { headers: { authorization: `Bearer ${doomed}` } }));
    assert.equal((await get(fixture.keys['keys-alpha']!)).status, 200);
    assert.match((await cli('list')).stdout, new RegExp(`${id}\\tkeys-alpha\\t[^\\t]+\\tnever\\trevoked \\d{4}-`));
  });

  test('revoke by the key itself; unknown and ambiguous ids are plain errors', async () => {
    const key = (await cli('create', '--project', 'keys-alpha')).stdout.trim();
    const revoked = await cli('revoke', key);
    assert.equal(revoked.code, 0, revoked.stderr);
    lapsed(/revoked/)(await get(key));
    const unknown = await cli('revoke', 'ffffffffffff');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no key has the id ffffffffffff/);
    assert.doesNotMatch(unknown.stderr, /^\s+at /m);
    const tooShort = await cli('revoke', 'abc');
    assert.equal(tooShort.code, 1);
    assert.match(tooShort.stderr, /at least 6 characters/);
  });

  test('--expires-in and --expires are recorded; a key works until its expiry and gets 401 after', async () => {
    const month = await cli('create', '--project', 'keys-alpha', '--expires-in', '30d');
    assert.equal(month.code, 0, month.stderr);
    const fixed = await cli('create', '--project', 'keys-alpha', '--expires', '2099-12-31T23:59:59+01:00');
    assert.equal(fixed.code, 0, fixed.stderr);
    const listed = (await cli('list')).stdout;
    const expiries = listed.split('\n').map((l) => l.split('\t')[3]).filter((e) => e && e !== 'never');
    assert.ok(expiries.includes('2099-12-31T22:59:59.000Z'), listed);
    const thirtyDays = expiries.map((e) => Date.parse(e!) - Date.now()).find((ms) => ms > 29 * 86_400_000 && ms < 31 * 86_400_000);
    assert.ok(thirtyDays, listed);
    assert.equal((await get(month.stdout.trim())).status, 200);

    // A key a second from its end (issued through the store the CLI uses: the CLI takes longer than that to start).
    const database = await Database.open(databaseTarget(undefined, dataDir()));
    const expiresAt = new Date(Date.now() + 1_500).toISOString();
    const key = await new KeyStore(database.db).create('keys-alpha', { expireTime: expiresAt });
    await database.close();
    assert.equal((await get(key)).status, 200);
    while (Date.now() < Date.parse(expiresAt) + 100) await sleep(100);
    lapsed(/^API key expired\. Please renew the API key\.$/)(await get(key));
    assert.equal((await get(month.stdout.trim())).status, 200);
  });

  test('bad expiries are usage errors', async () => {
    for (const args of [['--expires-in', '30x'], ['--expires-in', '0d'], ['--expires', 'tomorrow'], ['--expires', '2001-01-01T00:00:00Z'], ['--expires-in', '1d', '--expires', '2099-01-01T00:00:00Z']]) {
      const r = await cli('create', '--project', 'keys-alpha', ...args);
      assert.notEqual(r.code, 0, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, /expir/, args.join(' '));
      assert.doesNotMatch(r.stderr, /^\s+at /m);
    }
  });
});

describe('a keyless server', () => {
  const fixture = useServer({ keyless: true });

  test('a revoked key is refused rather than treated as keyless', async () => {
    const key = await fixture.server.createKey('keyless-keys');
    assert.equal((await call(`${fixture.url}${list}`, { key })).status, 200);
    assert.equal((await runCli(['keys', 'revoke', key, '--data-dir', fixture.server.dataDir])).code, 0);
    const variants: Record<string, string>[] = [{ 'x-goog-api-key': key }, { authorization: `Bearer ${key}` }];
    for (const headers of variants) {
      const r = await call(`${fixture.url}${list}`, { headers });
      assert.equal(r.status, 401, r.text);
    }
  });
});

test('a data dir from before keys could expire gets the columns; its keys stay valid and can be revoked', async () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-keys-migration-'));
  try {
    const old = new BetterSqlite3(path.join(dataDir, 'attune.sqlite'));
    old.exec('CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, project TEXT NOT NULL, label TEXT, create_time TEXT NOT NULL)');
    const key = 'atk_an-old-key-from-before-the-migration-00000';
    old.prepare('INSERT INTO api_keys VALUES (?, ?, ?, ?)').run(createHash('sha256').update(key).digest('hex'), 'old-project', 'old', '2025-01-01T00:00:00Z');
    old.close();

    const database = await Database.open(databaseTarget(undefined, dataDir));
    try {
      const keys = new KeyStore(database.db);
      assert.deepEqual(await keys.check(key), { project: 'old-project' });
      const [info] = await keys.list();
      assert.equal(info!.expireTime, null);
      assert.equal(info!.revokeTime, null);
      await keys.revoke(info!.id);
      assert.deepEqual(await keys.check(key), { problem: 'revoked' });
    } finally {
      await database.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
