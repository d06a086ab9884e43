// A thrown error as a gRPC status: the google.rpc code of the domain's error (classify(), the one mapping both
// transports use), its message, and google.rpc.Status with the BadRequest field violations in the
// grpc-status-details-bin trailer, where Google's clients read them (GoogleError.statusDetails).
import { Metadata, type StatusObject } from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { canonicalCodes } from '../../service/errors.js';
import { classify } from '../plugins/errors.js';

export type GrpcStatus = Pick<StatusObject, 'code' | 'details' | 'metadata'>;

export interface StatusEncoder {
  (error: unknown): GrpcStatus & { unexpected?: boolean };
}

export function statusEncoder(statusRoot: protobuf.Root): StatusEncoder {
  const Status = statusRoot.lookupType('google.rpc.Status');
  const BadRequest = statusRoot.lookupType('google.rpc.BadRequest');
  return (error) => {
    const { status, message, violations = [], unexpected } = classify(error);
    const { code } = canonicalCodes[status];
    const details = violations.length
      ? [{ type_url: `type.googleapis.com/${BadRequest.fullName.slice(1)}`, value: BadRequest.encode(BadRequest.fromObject({ fieldViolations: violations })).finish() }]
      : [];
    const metadata = new Metadata();
    metadata.set('grpc-status-details-bin', Buffer.from(Status.encode(Status.fromObject({ code, message, details })).finish()));
    return { code, details: message, metadata, unexpected };
  };
}
