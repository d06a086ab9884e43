// The gRPC server (`attune serve --grpc-port N`): plaintext HTTP/2 on grpc-js, serving Google's services from
// Google's own descriptors (descriptors.ts) onto the same domain as the HTTP server. Auth runs as an interceptor
// when a call's metadata arrives; a message over requestBodyBytes is refused by grpc-js (RESOURCE_EXHAUSTED)
// before it is decoded.
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import type { Services } from '../../service/services.js';
import { loadDescriptors, type Descriptors } from './descriptors.js';
import { statusEncoder } from './status.js';
import { grpcAuth, type GrpcAuth } from './auth.js';
import { bindService, type GrpcLog, type Handler } from './bind.js';
import { vertexHandlers } from './vertex.js';
import { geminiHandlers } from './gemini.js';

export interface GrpcServerOptions {
  host: string;
  port: number;
  /** The request log (Fastify's): each call, and unexpected errors (answered INTERNAL). */
  log: GrpcLog;
}

export interface GrpcServer {
  /** The port bound (the one asked for, or the one the OS chose for 0). */
  port: number;
  /** Stops taking calls and waits for those under way (cancelling them after graceMs). */
  close(graceMs?: number): Promise<void>;
}

/** Each service the server binds, with the handlers of the methods it serves (docs/api.md lists them). */
export function servedServices(services: Services, descriptors: Descriptors, auth: GrpcAuth): [protobuf.Service, Record<string, Handler>][] {
  return [...vertexHandlers(services, descriptors.vertex, auth), ...geminiHandlers(services, descriptors.gemini, auth)];
}

export async function startGrpcServer(services: Services, { host, port, log }: GrpcServerOptions): Promise<GrpcServer> {
  const descriptors = loadDescriptors();
  const encodeStatus = statusEncoder(descriptors.status);
  const auth = grpcAuth(services.keys, services.config.keyless, encodeStatus, log);
  const server = new grpc.Server({
    interceptors: [auth.interceptor],
    'grpc.max_receive_message_length': services.limits.requestBodyBytes,
  });
  for (const [service, methods] of servedServices(services, descriptors, auth)) {
    const { definition, implementation } = bindService(service, methods, { encodeStatus, log });
    server.addService(definition, implementation);
  }
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, boundPort) => (error ? reject(error) : resolve(boundPort))),
  );
  return {
    port: bound,
    close: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
