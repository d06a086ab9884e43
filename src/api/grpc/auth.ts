// Who is calling over gRPC, by the same rules as over HTTP (plugins/auth.ts): an API key in the x-goog-api-key
// or `authorization: Bearer` metadata, keyless callers only on a keyless (loopback) server and only under a
// loopback :authority. The interceptor decides when the call's metadata arrives, before a byte of its message is
// read: a caller without valid credentials gets its status at once. The handler then learns the project, once
// the request's resource name (projects/{p}/…) is known.
import * as grpc from '@grpc/grpc-js';
import type { KeyStore } from '../../service/auth/keys.js';
import { actingProject, identify, type Caller } from '../plugins/auth.js';
import { checkKeylessHost } from '../plugins/request-policy.js';
import type { StatusEncoder } from './status.js';
import type { GrpcCall, GrpcLog } from './bind.js';

const firstString = (metadata: grpc.Metadata, key: string): string | undefined => {
  const value = metadata.get(key)[0];
  return typeof value === 'string' && value !== '' ? value : undefined;
};

const credentialsOf = (metadata: grpc.Metadata) => ({
  key: firstString(metadata, 'x-goog-api-key'),
  bearer: firstString(metadata, 'authorization')?.match(/^Bearer\s+(.+)$/i)?.[1],
});

export interface GrpcAuth {
  interceptor: grpc.ServerInterceptor;
  /** The project the call acts for; `named` is the project its resource name gives, if any. */
  projectOf(call: GrpcCall, named?: string): Promise<string>;
}

export function grpcAuth(keys: KeyStore, keyless: boolean, encodeStatus: StatusEncoder, log: GrpcLog): GrpcAuth {
  const callers = new WeakMap<grpc.Metadata, Caller>();
  const identifyCall = async (metadata: grpc.Metadata, host: string): Promise<Caller> => {
    if (keyless) checkKeylessHost(host);
    return identify(credentialsOf(metadata), keys, keyless);
  };
  return {
    interceptor: (method, call) =>
      new grpc.ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (metadata, nextMetadata) => {
              identifyCall(metadata, call.getHost()).then(
                (caller) => {
                  callers.set(metadata, caller);
                  nextMetadata(metadata);
                },
                (error) => {
                  const { unexpected: _, ...status } = encodeStatus(error);
                  log.info({ method: method.path, code: grpc.status[status.code] }, 'gRPC call refused');
                  call.sendStatus(status); // the message is never read
                },
              );
            },
          }),
      }),
    async projectOf({ metadata }, named) {
      const caller = callers.get(metadata);
      if (!caller) throw new Error('a gRPC call reached its handler without passing the auth interceptor');
      return actingProject(caller, named ?? firstString(metadata, 'x-goog-user-project'), keys);
    },
  };
}
