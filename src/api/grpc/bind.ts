// One Google service, as its descriptor defines it, on grpc-js, with handlers that speak proto3 JSON: the same
// JSON the HTTP routes read and write, so both transports share one translation (api/vertex, api/gemini) and the
// descriptor alone defines each message's shape on the wire. Requests are decoded inside the handler, so bytes
// that are not the request message are the client's INVALID_ARGUMENT rather than the library's INTERNAL.
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { fromProto3JSON, toProto3JSON, type JSONObject } from 'proto3-json-serializer';
import { invalidArgument } from '../../service/errors.js';
import type { StatusEncoder } from './status.js';

export type Json = Record<string, unknown>;

export interface GrpcCall {
  metadata: grpc.Metadata;
  /** Aborted when the client cancels the call or goes away. */
  signal: AbortSignal;
  /** Seconds left until the call's deadline, if the client set one (the serving timeout, as X-Server-Timeout is over REST). */
  timeoutSeconds?: number;
}

/** A unary handler returns the response's JSON; a server-streaming one the responses'. */
export type Handler = (request: Json, call: GrpcCall) => Promise<unknown> | unknown;

export interface BoundService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

/** Where calls are logged (pino's interface, as Fastify's request log): never the metadata, which holds keys. */
export interface GrpcLog {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface BindOptions {
  encodeStatus: StatusEncoder;
  /** Each call's method, status code and time; unexpected errors (answered INTERNAL) with their stack. */
  log: GrpcLog;
}

/** proto3 JSON (undefined fields dropped) → the message's bytes. */
function encode(type: protobuf.Type, json: unknown): Buffer {
  const plain = JSON.parse(JSON.stringify(json ?? {})) as JSONObject;
  return Buffer.from(type.encode(fromProto3JSON(type, plain) ?? type.create()).finish());
}

function decode(type: protobuf.Type, bytes: Buffer): Json {
  let message: protobuf.Message;
  try {
    message = type.decode(bytes);
  } catch {
    throw invalidArgument(`The request is not a valid ${type.fullName.slice(1)} message.`);
  }
  return toProto3JSON(message) as Json;
}

/** The seconds the client will still wait (its deadline, sent as grpc-timeout), if it gave one. */
export function timeoutOf(call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getDeadline'>): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (!Number.isFinite(at)) return undefined; // Infinity: no deadline
  return Math.max(0.001, (at - Date.now()) / 1000);
}

function signalOf(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): AbortSignal {
  const controller = new AbortController();
  call.once('cancelled', () => controller.abort());
  return controller.signal;
}

/** Writes one message, waiting while the client's window is full. */
function write(call: grpc.ServerWritableStream<unknown, Buffer>, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (call.write(bytes)) resolve();
    else call.once('drain', resolve);
  });
}

export function bindService(service: protobuf.Service, handlers: Record<string, Handler>, { encodeStatus, log }: BindOptions): BoundService {
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  const identity = (bytes: Buffer) => bytes;
  for (const [name, handler] of Object.entries(handlers)) {
    const method = service.methods[name];
    if (!method) throw new Error(`${service.fullName} has no method ${name}`);
    method.resolve();
    const requestType = method.resolvedRequestType!;
    const responseType = method.resolvedResponseType!;
    const path = `/${service.fullName.slice(1)}/${name}`;
    if (method.requestStream) throw new Error(`${path}: client streaming is not served`);
    const done = (started: number, code: grpc.status) => log.info({ method: path, code: grpc.status[code], responseTime: performance.now() - started }, 'gRPC call completed');
    const failure = (error: unknown, started: number) => {
      const { unexpected, ...status } = encodeStatus(error);
      if (unexpected) log.error({ err: error, method: path }, 'unexpected error');
      done(started, status.code);
      return status;
    };
    definition[name] = {
      path,
      requestStream: false,
      responseStream: Boolean(method.responseStream),
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    };
    implementation[name] = method.responseStream
      ? async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          const started = performance.now();
          const signal = signalOf(call);
          try {
            const chunks = (await handler(decode(requestType, call.request), { metadata: call.metadata, signal, timeoutSeconds: timeoutOf(call) })) as AsyncIterable<unknown>;
            for await (const chunk of chunks) {
              if (signal.aborted) break;
              await write(call, encode(responseType, chunk));
            }
            if (signal.aborted) return done(started, grpc.status.CANCELLED);
            call.end();
            done(started, grpc.status.OK);
          } catch (error) {
            if (signal.aborted) return done(started, grpc.status.CANCELLED);
            call.emit('error', failure(error, started));
          }
        }
      : async (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const started = performance.now();
          try {
            const response = await handler(decode(requestType, call.request), { metadata: call.metadata, signal: signalOf(call), timeoutSeconds: timeoutOf(call) });
            callback(null, encode(responseType, response));
            done(started, grpc.status.OK);
          } catch (error) {
            callback(failure(error, started));
          }
        };
  }
  return { definition, implementation };
}
