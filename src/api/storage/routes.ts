// The part of the Cloud Storage JSON API that clients use to put datasets somewhere a `gs://` URI can name:
// media and multipart uploads, object metadata and bytes, listing the project's buckets and their objects
// (prefix, paging), delete. Objects live in the service's own ObjectStore. Bodies here are bytes, not JSON, so these routes sit in an
// encapsulated plugin whose only content-type parser hands the raw request stream to the handler (the root's
// lenient JSON parser stays as it is for every other route). Auth and google.rpc errors come from the root
// plugins, which are not encapsulated. Every call acts for the caller's project: the store answers another
// project's bucket as a missing one. Objects go back as attachments that the browser may not sniff or run
// (an uploaded text/html must never execute on this origin, where the console keeps its key).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { ServiceError, invalidArgument } from '../../service/errors.js';
import { ObjectStore, type ObjectInfo } from '../../service/storage/object-store.js';

export interface StorageRoutesOptions {
  store: ObjectStore;
  /** Largest multipart upload body held in memory (media uploads stream to disk); the store's uploadBytes caps both. */
  multipartBytes?: number;
}

interface BucketParams {
  bucket: string;
}
interface ObjectParams extends BucketParams {
  '*': string;
}

function baseUrl(request: FastifyRequest): string {
  return `${request.protocol}://${request.headers.host ?? 'localhost'}`;
}

/** The storage#object resource, as Cloud Storage writes it (int64 fields as strings). */
export function objectResource(info: ObjectInfo, base: string) {
  const encoded = encodeURIComponent(info.name);
  const updated = info.updated.toISOString();
  return {
    kind: 'storage#object',
    id: `${info.bucket}/${info.name}/${info.generation}`,
    selfLink: `${base}/storage/v1/b/${info.bucket}/o/${encoded}`,
    mediaLink: `${base}/download/storage/v1/b/${info.bucket}/o/${encoded}?generation=${info.generation}&alt=media`,
    name: info.name,
    bucket: info.bucket,
    generation: info.generation,
    metageneration: '1',
    contentType: info.contentType,
    storageClass: 'STANDARD',
    size: String(info.size),
    ...(info.md5Hash ? { md5Hash: info.md5Hash } : {}),
    ...(info.crc32c ? { crc32c: info.crc32c } : {}),
    etag: info.md5Hash ?? info.generation,
    timeCreated: updated,
    updated,
    timeStorageClassUpdated: updated,
  };
}

async function readAll(stream: Readable, limit: number, uploadBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of bodyOf(stream)) {
    size += (chunk as Buffer).length;
    if (size > uploadBytes) throw invalidArgument(`The upload is larger than ${uploadBytes} bytes, the limit uploadBytes.`, 'media');
    if (size > limit) throw invalidArgument(`Multipart upload bodies are limited to ${limit} bytes; use uploadType=media for larger objects.`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The body's chunks; stopping early (an error) leaves the request open, for discardRest. */
const bodyOf = (stream: Readable): AsyncIterable<Buffer> => stream.iterator({ destroyOnReturn: false });

/** Bytes of a refused upload's remaining body read and dropped, so the client sees the answer; past this the connection is closed. */
const discardBytes = 64 * 1024 * 1024;

/**
 * An upload refused part-way (over a limit) still has body bytes coming. Node leaves a half-read request
 * paused, which would stall the client (and its connection) forever; a close with unread bytes would reset
 * the connection before the client reads the error. So the rest is read and dropped, up to a bound.
 */
function discardRest(raw: IncomingMessage): void {
  if (raw.readableEnded) return;
  let discarded = 0;
  raw.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > discardBytes) raw.socket.destroy();
  });
  raw.resume();
}

interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

/** Splits a multipart/related body into its parts (RFC 2046): headers, blank line, bytes, CRLF--boundary. */
export function parseMultipart(body: Buffer, contentType: string): Part[] {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!match) throw invalidArgument('multipart upload: the Content-Type has no boundary.');
  const delimiter = Buffer.from(`--${match[1] ?? match[2]}`);
  const parts: Part[] = [];
  let at = body.indexOf(delimiter);
  if (at < 0) throw invalidArgument('multipart upload: the body has no parts.');
  for (;;) {
    at += delimiter.length;
    if (body.subarray(at, at + 2).toString() === '--') break; // the closing delimiter
    // Skip the rest of the delimiter line.
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd < 0) throw invalidArgument('multipart upload: truncated body.');
    const headerEnd = body.indexOf('\r\n\r\n', lineEnd);
    const headerBlock = headerEnd === lineEnd ? '' : body.subarray(lineEnd + 2, headerEnd < 0 ? lineEnd : headerEnd).toString('utf8');
    if (headerEnd < 0) throw invalidArgument('multipart upload: a part has no header end.');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) throw invalidArgument('multipart upload: a part has no closing boundary.');
    const headers: Record<string, string> = {};
    for (const line of headerBlock.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    at = next + 2;
  }
  return parts;
}

export async function storageRoutes(app: FastifyInstance, { store, multipartBytes = 64 * 1024 * 1024 }: StorageRoutesOptions): Promise<void> {
  // Encapsulated: this replaces the inherited lenient JSON parser for these routes only.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  type UploadRequest = FastifyRequest<{ Params: BucketParams; Querystring: Record<string, string | undefined> }>;
  app.post('/upload/storage/v1/b/:bucket/o', { config: { body: 'upload' } }, async (request: UploadRequest, reply) => {
    let info: ObjectInfo;
    try {
      info = await receive(request);
    } catch (error) {
      discardRest(request.raw);
      throw error;
    }
    return reply.code(200).send(objectResource(info, baseUrl(request)));
  });

  async function receive(request: UploadRequest): Promise<ObjectInfo> {
    const { bucket } = request.params;
    const query = request.query;
    const uploadType = query.uploadType ?? 'media';
    const stream = request.body as Readable | undefined;
    let info: ObjectInfo;
    if (uploadType === 'media') {
      if (!query.name) throw invalidArgument('Required parameter: name (uploadType=media).', 'name');
      const contentType = request.headers['content-type'];
      info = await store.put(request.project, bucket, query.name, stream ? bodyOf(stream) : Buffer.alloc(0), { contentType });
    } else if (uploadType === 'multipart') {
      const contentType = request.headers['content-type'] ?? '';
      if (!/^multipart\//i.test(contentType)) throw invalidArgument('uploadType=multipart needs a multipart/related body.');
      const body = stream ? await readAll(stream, multipartBytes, store.limits.uploadBytes ?? Infinity) : Buffer.alloc(0);
      const parts = parseMultipart(body, contentType);
      if (parts.length !== 2) throw invalidArgument(`multipart upload: expected 2 parts (metadata, data), got ${parts.length}.`);
      let metadata: { name?: unknown; contentType?: unknown };
      try {
        metadata = JSON.parse(parts[0].body.toString('utf8') || '{}') as typeof metadata;
      } catch (error) {
        throw invalidArgument(`multipart upload: the metadata part is not JSON. ${(error as Error).message}`);
      }
      const name = typeof metadata.name === 'string' && metadata.name ? metadata.name : query.name;
      if (!name) throw invalidArgument('Required: the object name (metadata "name" or ?name=).', 'name');
      const partType = typeof metadata.contentType === 'string' ? metadata.contentType : parts[1].headers['content-type'];
      info = await store.put(request.project, bucket, name, parts[1].body, { contentType: partType });
    } else {
      // A client's choice, not a server fault: 400 (a 5xx would tell clients to retry).
      throw invalidArgument(`uploadType=${uploadType} is not supported; use media or multipart (no resumable uploads: @google-cloud/storage needs resumable: false).`, 'uploadType');
    }
    return info;
  }

  // buckets.list: the caller's project's buckets (Cloud Storage requires ?project=; here it defaults to the caller's).
  app.get<{ Querystring: { project?: string } }>('/storage/v1/b', async (request) => {
    const { project = request.project } = request.query;
    if (project !== request.project) {
      throw new ServiceError('PERMISSION_DENIED', `The caller does not have permission to list the buckets of project ${project}.`);
    }
    const names = await store.buckets(project);
    return { kind: 'storage#buckets', ...(names.length ? { items: names.map((name) => ({ kind: 'storage#bucket', id: name, name })) } : {}) };
  });

  app.get<{ Params: BucketParams; Querystring: { prefix?: string; pageToken?: string; maxResults?: string } }>(
    '/storage/v1/b/:bucket/o',
    async (request) => {
      const { prefix, pageToken, maxResults } = request.query;
      let max: number | undefined;
      if (maxResults !== undefined && maxResults !== '') {
        max = Number(maxResults);
        if (!Number.isInteger(max) || max < 1) throw invalidArgument(`Invalid maxResults: '${maxResults}'.`, 'maxResults');
      }
      const page = await store.list(request.project, request.params.bucket, { prefix, pageToken: pageToken || undefined, maxResults: max });
      const base = baseUrl(request);
      return {
        kind: 'storage#objects',
        items: page.items.map((i) => objectResource(i, base)),
        ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}),
      };
    },
  );

  const media = async (request: FastifyRequest<{ Params: ObjectParams }>, reply: FastifyReply) => {
    const { info, stream } = await store.open(request.project, request.params.bucket, request.params['*']);
    return sendMedia(reply, info, stream);
  };

  app.get<{ Params: ObjectParams; Querystring: { alt?: string } }>('/storage/v1/b/:bucket/o/*', async (request, reply) => {
    const alt = request.query.alt ?? 'json';
    if (alt === 'media') return media(request, reply);
    if (alt !== 'json') throw invalidArgument(`Invalid alt: '${alt}'; use json or media.`, 'alt');
    return objectResource(await store.stat(request.project, request.params.bucket, request.params['*']), baseUrl(request));
  });

  // Where mediaLink points.
  app.get<{ Params: ObjectParams }>('/download/storage/v1/b/:bucket/o/*', media);

  app.delete<{ Params: ObjectParams }>('/storage/v1/b/:bucket/o/*', async (request, reply) => {
    await store.delete(request.project, request.params.bucket, request.params['*']);
    return reply.code(204).send();
  });
}

/** `attachment; filename=…` for the object's last name segment (RFC 6266, with an RFC 5987 UTF-8 form). */
function contentDisposition(name: string): string {
  const base = name.split('/').at(-1)!;
  const ascii = base.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(base)}`;
}

function sendMedia(reply: FastifyReply, info: ObjectInfo, stream: Readable) {
  reply
    .header('content-type', info.contentType)
    // Stored bytes are the uploader's: never rendered as a page of this origin, never sniffed into one.
    .header('content-disposition', contentDisposition(info.name))
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "sandbox; default-src 'none'")
    .header('content-length', String(info.size))
    .header('x-goog-generation', info.generation)
    .header('x-goog-metageneration', '1')
    .header('x-goog-stored-content-length', String(info.size))
    .header('x-goog-storage-class', 'STANDARD');
  const hashes = [info.crc32c && `crc32c=${info.crc32c}`, info.md5Hash && `md5=${info.md5Hash}`].filter(Boolean);
  if (hashes.length) reply.header('x-goog-hash', hashes.join(','));
  return reply.send(stream);
}
