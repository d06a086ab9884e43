// A minimal ZIP writer (stored entries, no compression) for export downloads: model weights are float
// tensors that barely compress, and storing keeps this small and streaming. Each file is read twice (CRC,
// then data) so memory stays flat whatever the model's size. Entries and archives past 4 GiB (a merged or
// GGUF model of a few billion parameters) get ZIP64 records, which every current unzip reads.
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
const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };

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
  zip64: boolean;
  stamp: { time: number; date: number };
}

export interface ZipOptions {
  /** Write ZIP64 records for every entry, not only where 32 bits do not suffice (for tests of small files). */
  forceZip64?: boolean;
}

/** The ZIP64 extended-information extra field: the sizes (and, in the central directory, the offset) in 64 bits. */
function zip64Extra(values: number[]): Buffer {
  return Buffer.concat([u16(0x0001), u16(values.length * 8), ...values.map(u64)]);
}

/** The archive's bytes, in order; pipe them to the reply. */
export async function* zipFiles(entries: ZipEntry[], { forceZip64 = false }: ZipOptions = {}): AsyncGenerator<Buffer> {
  const written: Written[] = [];
  let offset = 0;
  for (const entry of entries) {
    const info = await stat(entry.path);
    const zip64 = forceZip64 || info.size >= zip32Limit || offset >= zip32Limit;
    const record: Written = { name: Buffer.from(entry.name, 'utf8'), crc: await fileCrc(entry.path), size: info.size, offset, zip64, stamp: dosDateTime(info.mtime) };
    const extra = zip64 ? zip64Extra([record.size, record.size]) : Buffer.alloc(0);
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0); // local file header signature
    header.writeUInt16LE(zip64 ? 45 : 20, 4); // version needed: 4.5 for ZIP64, else 2.0
    header.writeUInt16LE(0x0800, 6); // flags: names are UTF-8
    header.writeUInt16LE(0, 8); // method: stored
    header.writeUInt16LE(record.stamp.time, 10);
    header.writeUInt16LE(record.stamp.date, 12);
    header.writeUInt32LE(record.crc, 14);
    header.writeUInt32LE(zip64 ? zip32Limit : record.size, 18); // compressed size
    header.writeUInt32LE(zip64 ? zip32Limit : record.size, 22); // uncompressed size
    header.writeUInt16LE(record.name.length, 26);
    header.writeUInt16LE(extra.length, 28);
    yield Buffer.concat([header, record.name, extra]);
    let copied = 0;
    for await (const chunk of createReadStream(entry.path)) {
      copied += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (copied !== record.size) throw new Error(`${entry.name} changed while it was being archived`);
    offset += header.length + record.name.length + extra.length + record.size;
    written.push(record);
  }
  const central: Buffer[] = [];
  for (const record of written) {
    const extra = record.zip64 ? zip64Extra([record.size, record.size, record.offset]) : Buffer.alloc(0);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0); // central directory header signature
    header.writeUInt16LE(record.zip64 ? 45 : 20, 4); // version made by
    header.writeUInt16LE(record.zip64 ? 45 : 20, 6); // version needed
    header.writeUInt16LE(0x0800, 8);
    header.writeUInt16LE(0, 10);
    header.writeUInt16LE(record.stamp.time, 12);
    header.writeUInt16LE(record.stamp.date, 14);
    header.writeUInt32LE(record.crc, 16);
    header.writeUInt32LE(record.zip64 ? zip32Limit : record.size, 20);
    header.writeUInt32LE(record.zip64 ? zip32Limit : record.size, 24);
    header.writeUInt16LE(record.name.length, 28);
    header.writeUInt16LE(extra.length, 30);
    // comment length, disk number, internal and external attributes: all zero
    header.writeUInt32LE(record.zip64 ? zip32Limit : record.offset, 42);
    central.push(header, record.name, extra);
  }
  const directory = Buffer.concat(central);
  const zip64End = forceZip64 || written.some((r) => r.zip64) || offset >= zip32Limit || written.length >= 0xffff;
  const tail: Buffer[] = [directory];
  if (zip64End) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0); // ZIP64 end of central directory record
    record.writeBigUInt64LE(44n, 4); // size of the rest of this record
    record.writeUInt16LE(45, 12); // version made by
    record.writeUInt16LE(45, 14); // version needed
    // disk numbers (16, 20): zero
    record.writeBigUInt64LE(BigInt(written.length), 24); // entries on this disk
    record.writeBigUInt64LE(BigInt(written.length), 32); // entries in all
    record.writeBigUInt64LE(BigInt(directory.length), 40);
    record.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0); // ZIP64 end of central directory locator
    locator.writeBigUInt64LE(BigInt(offset + directory.length), 8); // where the record above starts
    locator.writeUInt32LE(1, 16); // disks in all
    tail.push(record, locator);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); // end of central directory signature
  end.writeUInt16LE(zip64End ? 0xffff : written.length, 8); // entries on this disk
  end.writeUInt16LE(zip64End ? 0xffff : written.length, 10); // entries in all
  end.writeUInt32LE(zip64End ? zip32Limit : directory.length, 12);
  end.writeUInt32LE(zip64End ? zip32Limit : offset, 16);
  tail.push(end);
  yield Buffer.concat(tail);
}
