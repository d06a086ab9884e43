// One Google service, as its descriptor defines it, on grpc-js, with handlers that speak proto3 JSON: the same
// JSON the HTTP routes read and write, so both transports share one translation (api/vertex, api/gemini) and the
// descriptor alone defines each message's shape on the wire. Requests are decoded inside the handler, so bytes
// that are not the request message are the client's INVALID_ARGUMENT rather than the library's INTERNAL.
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { fromProto3JSON, toProto3JSON, type JSONObject } from 'proto3-json-serializer';
import { invalidArgument } from '../../service/errors.js';
import type { StatusEncoder } from './status.js';

export type Json = Record<string, unknown>;

export interface GrpcCall {
  metadata: grpc.Metadata;
  /** Aborted when the client cancels the call or goes away. */
  signal: AbortSignal;
}

/** A unary handler returns the response's JSON; a server-streaming one the responses'. */
export type Handler = (request: Json, call: GrpcCall) => Promise<unknown> | unknown;

export interface BoundService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export interface BindOptions {
  encodeStatus: StatusEncoder;
  /** Unexpected errors (answered INTERNAL) are reported here. */
  onUnexpected: (error: unknown, method: string) => void;
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

export function bindService(service: protobuf.Service, handlers: Record<string, Handler>, { encodeStatus, onUnexpected }: BindOptions): BoundService {
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
    const failure = (error: unknown) => {
      const { unexpected, ...status } = encodeStatus(error);
      if (unexpected) onUnexpected(error, path);
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
    if (method.requestStream) throw new Error(`${path}: client streaming is not served`);
    implementation[name] = method.responseStream
      ? async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          const signal = signalOf(call);
          try {
            const chunks = (await handler(decode(requestType, call.request), { metadata: call.metadata, signal })) as AsyncIterable<unknown>;
            for await (const chunk of chunks) {
              if (signal.aborted) return;
              await write(call, encode(responseType, chunk));
            }
            call.end();
          } catch (error) {
            if (!signal.aborted) call.emit('error', failure(error));
          }
        }
      : async (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          try {
            const response = await handler(decode(requestType, call.request), { metadata: call.metadata, signal: signalOf(call) });
            callback(null, encode(responseType, response));
          } catch (error) {
            callback(failure(error));
          }
        };
  }
  return { definition, implementation };
}
