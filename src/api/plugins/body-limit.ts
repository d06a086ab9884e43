// How many body bytes a request may send, decided once the caller is known (this plugin's hooks run after
// auth's): an authenticated caller gets requestBodyBytes (uploadBytes on an upload route), anyone else (public
// routes, unknown paths) unauthenticatedBodyBytes. A declared Content-Length over the limit is refused before
// a byte is read; a body without one is counted as it streams in, and past the limit the rest is read and
// dropped (up to drainBytes more), so the client still gets its 413 instead of a reset connection.
//
// Clients that ask first (Expect: 100-continue, as curl does for large bodies) are told to go on only when
// the body is about to be read, so a refused request's body is never sent at all.
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { payloadTooLarge } from '../../service/errors.js';
import type { ServiceLimits } from '../../service/limits.js';

export interface BodyLimitOptions {
  limits: ServiceLimits;
}

/** Bytes of an over-limit body read and dropped before the connection is closed instead. */
const drainBytes = 64 * 1024 * 1024;

type BodyLimitName = 'requestBodyBytes' | 'uploadBytes' | 'unauthenticatedBodyBytes';

function limitOf(request: FastifyRequest): BodyLimitName {
  if (!request.project) return 'unauthenticatedBodyBytes';
  return request.routeOptions.config?.body === 'upload' ? 'uploadBytes' : 'requestBodyBytes';
}

/**
 * Passes bytes through up to the limit; past it drops them and fails at the end (or at once past drainBytes).
 * Once the answer has gone out, drain() drops everything still to come, up to drainBytes.
 */
class LimitedBody extends Transform {
  receivedEncodedLength = 0; // Fastify compares it with Content-Length
  private drainedFrom: number | undefined;

  constructor(
    private readonly limit: number,
    private readonly error: () => Error,
  ) {
    super();
  }

  drain(): void {
    this.drainedFrom ??= this.receivedEncodedLength;
    this.resume();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.receivedEncodedLength += chunk.length;
    const dropFrom = this.drainedFrom ?? this.limit;
    if (this.receivedEncodedLength <= dropFrom) return done(null, chunk);
    // Failing destroys the request, and with it the connection.
    if (this.receivedEncodedLength > dropFrom + drainBytes) return done(this.error());
    done();
  }

  override _flush(done: TransformCallback): void {
    done(this.drainedFrom === undefined && this.receivedEncodedLength > this.limit ? this.error() : null);
  }
}

/** The body stream of each request being read, so that a reply sent before it was read to the end can drain it. */
const bodies = new WeakMap<IncomingMessage, LimitedBody>();
/** Requests that asked `Expect: 100-continue` and were told to go on. */
const continued = new WeakSet<IncomingMessage>();

const expectsContinue = (request: FastifyRequest) => request.headers.expect?.toLowerCase() === '100-continue';

export const bodyLimitPlugin = fp(async (app: FastifyInstance, { limits }: BodyLimitOptions) => {
  // Without a listener Node answers 100 Continue itself at once; with one, the request goes on unanswered
  // and preParsing says "continue" only when the body is wanted.
  app.server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => app.server.emit('request', request, response));

  app.addHook('onRequest', async (request) => {
    const name = limitOf(request);
    const declared = Number(request.headers['content-length']);
    if (declared > limits[name]) throw payloadTooLarge(name, limits[name]);
  });

  app.addHook('preParsing', async (request, reply, payload) => {
    if (expectsContinue(request) && !reply.raw.headersSent) {
      reply.raw.writeContinue();
      continued.add(request.raw);
    }
    const name = limitOf(request);
    const limited = new LimitedBody(limits[name], () => payloadTooLarge(name, limits[name]));
    bodies.set(request.raw, limited);
    // Errors end up in whoever reads `limited` (the body parser or an upload's handler).
    return pipeline(payload as Readable, limited, () => {});
  });

  // An answer sent before the whole body has arrived (a refusal) keeps the connection open, even for a client
  // that asked to close it, while the rest is read and dropped: closing a socket with unread bytes resets it,
  // and a client still writing would then see the reset instead of the answer (nginx's "lingering close").
  // A client still waiting for 100 Continue sends no body: its connection is closed, as it cannot be reused.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.raw.complete || reply.hasHeader('connection')) return payload;
    if (expectsContinue(request) && !continued.has(request.raw)) reply.header('connection', 'close');
    else reply.raw.shouldKeepAlive = true;
    return payload;
  });

  // The rest of an unread body is read and dropped, so the connection can serve the next request; past
  // drainBytes the connection is closed instead. Node does this itself for a body nobody started reading; a body
  // a route started and left (an upload refused half-way) would otherwise stall the connection for good.
  app.addHook('onResponse', async (request) => {
    const raw = request.raw;
    if (raw.complete) return;
    const body = bodies.get(raw);
    if (body) return body.drain();
    let dropped = 0;
    raw.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > drainBytes) raw.socket?.destroy();
    });
  });
});
