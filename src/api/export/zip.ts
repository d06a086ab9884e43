// A minimal ZIP writer (stored entries, no compression) for export downloads: LoRA weights are float
// tensors that barely compress, and storing keeps this small and streaming. Each file is read twice (CRC,
// then data) so memory stays flat whatever the adapter's size. Sizes above 4 GiB would need ZIP64: refused.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export interface ZipEntry {
  /** The name inside the archive ('/'-separated). */
  name: string;
  /** The file on disk. */
  path: string;
}

const zip32Limit = 0xffffffff;

async function fileCrc(path: string): Promise<number> {
  let crc = 0;
  for await (const chunk of createReadStream(path)) crc = crc32(chunk as Buffer, crc);
  return crc;
}

/** MS-DOS date and time, the only timestamps a plain ZIP header holds (2-second resolution, local time). */
function dosDateTime(date: Date): { time: number; date: number } {
  const year = Math.max(1980, date.getFullYear());
  return {
    time: (date.getHours() << 11) | (date.getMinutes() << 5) | Math.floor(date.getSeconds() / 2),
    date: ((year - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate(),
  };
}

interface Written {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
  stamp: { time: number; date: number };
}

/** The archive's bytes, in order; pipe them to the reply. */
export async function* zipFiles(entries: ZipEntry[]): AsyncGenerator<Buffer> {
  const written: Written[] = [];
  let offset = 0;
  for (const entry of entries) {
    const info = await stat(entry.path);
    if (info.size > zip32Limit) throw new Error(`${entry.name} is over 4 GiB, which needs ZIP64`);
    const record: Written = { name: Buffer.from(entry.name, 'utf8'), crc: await fileCrc(entry.path), size: info.size, offset, stamp: dosDateTime(info.mtime) };
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0); // local file header signature
    header.writeUInt16LE(20, 4); // version needed: 2.0
    header.writeUInt16LE(0x0800, 6); // flags: names are UTF-8
    header.writeUInt16LE(0, 8); // method: stored
    header.writeUInt16LE(record.stamp.time, 10);
    header.writeUInt16LE(record.stamp.date, 12);
    header.writeUInt32LE(record.crc, 14);
    header.writeUInt32LE(record.size, 18); // compressed size
    header.writeUInt32LE(record.size, 22); // uncompressed size
    header.writeUInt16LE(record.name.length, 26);
    header.writeUInt16LE(0, 28); // extra field length
    yield Buffer.concat([header, record.name]);
    let copied = 0;
    for await (const chunk of createReadStream(entry.path)) {
      copied += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (copied !== record.size) throw new Error(`${entry.name} changed while it was being archived`);
    offset += header.length + record.name.length + record.size;
    written.push(record);
  }
  const central: Buffer[] = [];
  for (const record of written) {
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0); // central directory header signature
    header.writeUInt16LE(20, 4); // version made by
    header.writeUInt16LE(20, 6); // version needed
    header.writeUInt16LE(0x0800, 8);
    header.writeUInt16LE(0, 10);
    header.writeUInt16LE(record.stamp.time, 12);
    header.writeUInt16LE(record.stamp.date, 14);
    header.writeUInt32LE(record.crc, 16);
    header.writeUInt32LE(record.size, 20);
    header.writeUInt32LE(record.size, 24);
    header.writeUInt16LE(record.name.length, 28);
    // extra length, comment length, disk number, internal and external attributes: all zero
    header.writeUInt32LE(record.offset, 42);
    central.push(header, record.name);
  }
  const directory = Buffer.concat(central);
  if (offset > zip32Limit) throw new Error('the archive is over 4 GiB, which needs ZIP64');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); // end of central directory signature
  end.writeUInt16LE(written.length, 8); // entries on this disk
  end.writeUInt16LE(written.length, 10); // entries in all
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  yield Buffer.concat([directory, end]);
}
