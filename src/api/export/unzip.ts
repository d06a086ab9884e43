// Reads the ZIPs zip.ts writes (stored entries whose sizes are in their local headers or their ZIP64 extra
// fields) as a stream, writing each entry into a directory: how `attune export --server` unpacks a download
// without holding it in memory. Entry names must be plain file names; the CRC of each is checked.
import { createWriteStream, rmSync } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { crc32 } from 'node:zlib';

class StreamReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private done = false;
  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Makes at least n bytes available, or fewer at the end of the stream. */
  private async fill(n: number): Promise<void> {
    while (this.length < n && !this.done) {
      const next = await this.source.next();
      if (next.done) this.done = true;
      else {
        this.buffered.push(Buffer.from(next.value));
        this.length += next.value.length;
      }
    }
  }

  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    if (this.length < n) throw new Error('the archive ends early (a download cut short?)');
    const all = Buffer.concat(this.buffered);
    this.buffered = [all.subarray(n)];
    this.length -= n;
    return all.subarray(0, n);
  }

  /** Passes the next n bytes to each(chunk) as they arrive. */
  async forEachChunk(n: number, each: (chunk: Buffer) => Promise<void>): Promise<void> {
    let left = n;
    while (left > 0) {
      await this.fill(1);
      if (this.length === 0) throw new Error('the archive ends early (a download cut short?)');
      const head = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
      const take = Math.min(left, head.length);
      await each(head.subarray(0, take));
      this.buffered = [head.subarray(take)];
      this.length -= take;
      left -= take;
    }
  }
}

/** An entry's uncompressed size from its ZIP64 extra field (id 1: uncompressed, then compressed size). */
function zip64Size(extra: Buffer, name: string): number {
  for (let at = 0; at + 4 <= extra.length; at += 4 + extra.readUInt16LE(at + 2)) {
    if (extra.readUInt16LE(at) === 0x0001) return Number(extra.readBigUInt64LE(at + 4));
  }
  throw new Error(`${name}: a ZIP64 entry without its sizes`);
}

/** Writes every entry of a stored ZIP (ZIP64 too) into dir; returns the names. */
export async function unzipStored(source: AsyncIterable<Uint8Array>, dir: string): Promise<string[]> {
  const reader = new StreamReader(source[Symbol.asyncIterator]());
  const names: string[] = [];
  for (;;) {
    const signature = (await reader.read(4)).readUInt32LE(0);
    // The central directory (or, for an empty archive, an end record): every entry is read.
    if (signature === 0x02014b50 || signature === 0x06054b50 || signature === 0x06064b50) return names;
    if (signature !== 0x04034b50) throw new Error('not a ZIP archive');
    const header = await reader.read(26);
    const flags = header.readUInt16LE(2);
    const method = header.readUInt16LE(4);
    const crc = header.readUInt32LE(10);
    let size = header.readUInt32LE(14);
    const name = (await reader.read(header.readUInt16LE(22))).toString('utf8');
    const extra = await reader.read(header.readUInt16LE(24));
    if (size === 0xffffffff) size = zip64Size(extra, name);
    if (method !== 0 || flags & 0x08) throw new Error(`${name}: only stored entries with sizes in their headers are read`);
    if (name !== path.basename(name) || name === '..' || name === '.' || name.includes('\\')) throw new Error(`refusing the entry name ${JSON.stringify(name)}`);
    const file = path.join(dir, name);
    const out = createWriteStream(file);
    try {
      let actual = 0;
      await reader.forEachChunk(size, async (chunk) => {
        actual = crc32(chunk, actual);
        if (!out.write(chunk)) await once(out, 'drain');
      });
      out.end();
      await once(out, 'close');
      if (actual !== crc) throw new Error(`${name}: CRC mismatch (a corrupted download?)`);
    } catch (error) {
      if (!out.closed) await new Promise<void>((resolve) => out.destroy().once('close', () => resolve()));
      rmSync(file, { force: true }); // no half-written or corrupted file is left behind
      throw error;
    }
    names.push(name);
  }
}
