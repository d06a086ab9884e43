// The Vertex resources a tuned model shows as (vertex-api.md §2.4; aiplatform v1 endpoint.proto, model.proto,
// llm_utility_service.proto): one schema per message, from which the TypeScript type is derived, so that the
// shape is written once. Domain → wire for the Endpoint and the Model; the request schemas the routes check.
import { Type, type Static } from '@sinclair/typebox';
import type { TunedModel } from '../../service/tuning/tuned-model.js';
import type { TunedCheckpoint } from '../../service/tuning/checkpoints.js';
import type { EndpointOf } from './resources.js';
import { defaultCheckpointOf } from './wire.js';
import { pagingQuery } from '../paging.js';
import { nonZero, type WireOptions } from '../proto-json.js';
import { defaultVersionAlias, endpointName, modelResourceName, type VertexVersion } from './names.js';

const Timestamp = Type.String({ description: 'RFC 3339' });
const Labels = Type.Record(Type.String(), Type.String());
/** int64 in proto3 JSON. */
const Int64 = Type.String({ pattern: '^-?\\d+$' });

// ---------------------------------------------------------------------------------------------------
// Messages

export const DeployedModel = Type.Object({
  id: Type.String(),
  model: Type.String(),
  modelVersionId: Type.String(),
  displayName: Type.Optional(Type.String()),
  createTime: Timestamp,
  checkpointId: Type.Optional(Type.String()),
});

export const Endpoint = Type.Object({
  name: Type.String(),
  displayName: Type.String(),
  description: Type.Optional(Type.String()),
  deployedModels: Type.Array(DeployedModel),
  trafficSplit: Type.Record(Type.String(), Type.Integer()),
  labels: Type.Optional(Labels),
  createTime: Timestamp,
  updateTime: Timestamp,
});
export type Endpoint = Static<typeof Endpoint>;

export const DeployedModelRef = Type.Object({ endpoint: Type.String(), deployedModelId: Type.String(), checkpointId: Type.Optional(Type.String()) });

/** Model.checkpoints and ListModelVersionCheckpoints' entries (Checkpoint, ModelVersionCheckpoint). */
export const Checkpoint = Type.Object({ checkpointId: Type.String(), epoch: Int64, step: Int64 });
export type Checkpoint = Static<typeof Checkpoint>;

/** ModelSourceInfo.ModelSourceType: tuned foundation models are GENIE's. */
export const modelSourceTypes = { MODEL_SOURCE_TYPE_UNSPECIFIED: 0, GENIE: 5 } as const;

export const Model = Type.Object({
  name: Type.String(),
  versionId: Type.String(),
  versionAliases: Type.Array(Type.String()),
  versionCreateTime: Timestamp,
  versionUpdateTime: Timestamp,
  displayName: Type.String(),
  description: Type.Optional(Type.String()),
  deployedModels: Type.Array(DeployedModelRef),
  labels: Type.Optional(Labels),
  createTime: Timestamp,
  updateTime: Timestamp,
  modelSourceInfo: Type.Object({ sourceType: Type.Union([Type.String(), Type.Integer()]) }),
  defaultCheckpointId: Type.Optional(Type.String()),
  checkpoints: Type.Optional(Type.Array(Checkpoint)),
});
export type Model = Static<typeof Model>;

export const ListEndpointsResponse = Type.Object({ endpoints: Type.Optional(Type.Array(Endpoint)), nextPageToken: Type.Optional(Type.String()) });
export const ListModelsResponse = Type.Object({ models: Type.Optional(Type.Array(Model)), nextPageToken: Type.Optional(Type.String()) });

export const TokensInfo = Type.Object({
  /** bytes: base64 in proto3 JSON. */
  tokens: Type.Array(Type.String({ contentEncoding: 'base64' })),
  tokenIds: Type.Array(Int64),
  role: Type.Optional(Type.String()),
});
export const ComputeTokensResponse = Type.Object({ tokensInfo: Type.Array(TokensInfo) });
export type ComputeTokensResponse = Static<typeof ComputeTokensResponse>;

/** A google.longrunning.Operation that is done when it is returned (deletes are immediate here). */
export const DoneOperation = Type.Object({
  name: Type.String(),
  metadata: Type.Object({ '@type': Type.String(), genericMetadata: Type.Object({ createTime: Timestamp, updateTime: Timestamp }) }),
  done: Type.Literal(true),
  response: Type.Object({ '@type': Type.String() }),
});
export type DoneOperation = Static<typeof DoneOperation>;

// ---------------------------------------------------------------------------------------------------
// Requests (checked at the edge)

export const ListQuery = Type.Object({
  ...pagingQuery,
  filter: Type.Optional(Type.String()),
  orderBy: Type.Optional(Type.String()),
  readMask: Type.Optional(Type.String()),
});
export type ListQuery = Static<typeof ListQuery>;

export const UpdateModelQuery = Type.Object({ updateMask: Type.Optional(Type.String()) });
export type UpdateModelQuery = Static<typeof UpdateModelQuery>;

/** The Model of an UpdateModel request: the fields Attune changes; the rest of a Model the client echoes is ignored. */
export const UpdateModelBody = Type.Object({
  defaultCheckpointId: Type.Optional(Type.String({ maxLength: 64 })),
  displayName: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
});
export type UpdateModelBody = Static<typeof UpdateModelBody>;

/** contents (a Content or a list of them) or PaLM-era instances ({prompt} or {content}); `model` is ignored. */
export const ComputeTokensRequest = Type.Object({
  endpoint: Type.Optional(Type.String()),
  model: Type.Optional(Type.String()),
  contents: Type.Optional(Type.Union([Type.Array(Type.Unknown()), Type.Object({})])),
  instances: Type.Optional(Type.Array(Type.Unknown())),
});
export type ComputeTokensRequest = Static<typeof ComputeTokensRequest>;

// ---------------------------------------------------------------------------------------------------
// Domain → wire

/**
 * Attune deploys a tuned model's checkpoints when its run keeps them, each on its own endpoint, under the
 * endpoint's number; all are checkpoints of the one Model version the run made.
 */
const deployTime = (model: TunedModel) => model.completeTime ?? model.updateTime;
const labelsOf = (model: TunedModel) => (Object.keys(model.labels).length ? model.labels : undefined);

export const checkpointWire = (c: TunedCheckpoint): Checkpoint => ({ checkpointId: c.checkpointId, epoch: String(c.epoch), step: String(c.step) });

export function endpointWire({ model, checkpoint, number }: EndpointOf): Endpoint {
  const created = checkpoint?.createTime ?? deployTime(model);
  return {
    name: endpointName(model, number),
    // The run's last adapter is on the job's own number; an intermediate checkpoint's endpoint says which it is.
    displayName: number === model.jobNumber || !checkpoint ? model.displayName : `${model.displayName} (checkpoint ${checkpoint.checkpointId})`,
    description: nonZero(model.description),
    deployedModels: [
      {
        id: number,
        model: modelResourceName(model),
        modelVersionId: String(model.modelVersion),
        displayName: nonZero(model.displayName),
        createTime: created,
        checkpointId: checkpoint?.checkpointId,
      },
    ],
    trafficSplit: { [number]: 100 },
    labels: labelsOf(model),
    createTime: created,
    updateTime: model.updateTime,
  };
}

/** One version of a Model; `isDefault` when it is the latest version whose run kept an adapter. */
export function modelWire(model: TunedModel, options: WireOptions, checkpoints: readonly TunedCheckpoint[], isDefault: boolean): Model {
  const deployed = checkpoints.length
    ? checkpoints.map((c) => ({ endpoint: endpointName(model, c.endpointNumber), deployedModelId: c.endpointNumber, checkpointId: c.checkpointId }))
    : [{ endpoint: endpointName(model), deployedModelId: model.jobNumber }];
  return {
    name: modelResourceName(model),
    versionId: String(model.modelVersion),
    versionAliases: isDefault ? [defaultVersionAlias] : [],
    versionCreateTime: deployTime(model),
    versionUpdateTime: model.updateTime,
    displayName: model.displayName,
    description: nonZero(model.description),
    deployedModels: deployed,
    labels: labelsOf(model),
    createTime: deployTime(model),
    updateTime: model.updateTime,
    modelSourceInfo: { sourceType: options.integerEnums ? modelSourceTypes.GENIE : 'GENIE' },
    defaultCheckpointId: defaultCheckpointOf(model, checkpoints)?.checkpointId,
    checkpoints: checkpoints.length ? checkpoints.map(checkpointWire) : undefined,
  };
}

export function tokensInfoWire(tokens: { ids: number[]; bytes: Uint8Array[] }, role?: string) {
  return {
    tokens: tokens.bytes.map((b) => Buffer.from(b).toString('base64')),
    tokenIds: tokens.ids.map(String),
    role,
  };
}

/** DeleteModel and DeleteEndpoint answer an Operation with DeleteOperationMetadata. */
export function deleteOperationWire(parent: string, operationId: string, version: VertexVersion, time: string): DoneOperation {
  return {
    name: `${parent}/operations/${operationId}`,
    metadata: {
      '@type': `type.googleapis.com/google.cloud.aiplatform.${version}.DeleteOperationMetadata`,
      genericMetadata: { createTime: time, updateTime: time },
    },
    done: true,
    response: { '@type': 'type.googleapis.com/google.protobuf.Empty' },
  };
}
