// The export ZIPs: what zip.ts writes (plain and ZIP64, as exports past 4 GiB are) Python's zipfile reads
// with every CRC checked, and unzip.ts (attune export --server) reads back byte for byte; a corrupted or
// cut-short download, or an entry name that climbs out of the folder, is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { zipFiles } from '../src/api/export/zip.js';
import { unzipStored } from '../src/api/export/unzip.js';
import { tempDir } from './helpers/engine.js';

async function archive(files: { name: string; path: string }[], forceZip64: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of zipFiles(files, { forceZip64 })) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* chunked(bytes: Buffer, size = 1000): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

for (const forceZip64 of [false, true]) {
  test(`${forceZip64 ? 'ZIP64' : 'plain'} archives: Python reads them, unzipStored gives the files back`, async (t) => {
    const dir = tempDir(t);
    const files = [
      { name: 'adapter.gguf', data: randomBytes(300_000) },
      { name: 'Modelfile', data: Buffer.from('FROM ./base.gguf\n') },
      { name: 'empty.txt', data: Buffer.alloc(0) },
    ];
    mkdirSync(path.join(dir, 'in'));
    for (const f of files) writeFileSync(path.join(dir, 'in', f.name), f.data);
    const zip = await archive(files.map((f) => ({ name: f.name, path: path.join(dir, 'in', f.name) })), forceZip64);
    writeFileSync(path.join(dir, 'a.zip'), zip);
    const script = 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(sorted((i.filename, i.file_size) for i in z.infolist()))';
    assert.equal(
      execFileSync('python3', ['-c', script, path.join(dir, 'a.zip')], { encoding: 'utf8' }).trim(),
      "[('Modelfile', 17), ('adapter.gguf', 300000), ('empty.txt', 0)]",
    );
    mkdirSync(path.join(dir, 'out'));
    assert.deepEqual((await unzipStored(chunked(zip), path.join(dir, 'out'))).sort(), files.map((f) => f.name).sort());
    for (const f of files) assert.ok(readFileSync(path.join(dir, 'out', f.name)).equals(f.data), f.name);
  });
}

test('unzipStored refuses a corrupted entry, a cut-short archive and a name outside the folder', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'x.bin'), randomBytes(5000));
  const zip = await archive([{ name: 'x.bin', path: path.join(dir, 'x.bin') }], false);
  const out = path.join(dir, 'out');
  mkdirSync(out);

  const corrupted = Buffer.from(zip);
  corrupted[100]! ^= 0xff;
  await assert.rejects(unzipStored(chunked(corrupted), out), /x\.bin: CRC mismatch/);
  await assert.rejects(unzipStored(chunked(zip.subarray(0, 3000)), out), /the archive ends early/);

  const climbing = await archive([{ name: '../x.bin', path: path.join(dir, 'x.bin') }], false);
  await assert.rejects(unzipStored(chunked(climbing), out), /refusing the entry name "\.\.\/x\.bin"/);
  assert.deepEqual(readdirSync(out), [], 'nothing corrupted or half-written is left');
  assert.deepEqual(readdirSync(dir).sort(), ['out', 'x.bin']);
});
