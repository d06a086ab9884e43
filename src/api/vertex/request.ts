// A CreateTuningJob body as real clients send it (vertex-api.md §1.2, §4.1): names in either case (the
// lenient JSON plugin camelCases them), int64 and doubles as numbers or strings, enums as names or integers.
import { adapterSizeRanks } from '../../engine/lora/lora.js';
import { ServiceError, invalidArgument } from '../../service/errors.js';
import type { Hyperparameters, TuningMethod } from '../../service/tuning/tuned-model.js';
import { isObject } from '../proto-json.js';
import { adapterSizeNumbers } from './wire.js';

type Json = Record<string, unknown>;

/** Each tuning method's spec: its JSON name and the field path errors name. */
const specs = {
  supervised: { name: 'supervisedTuningSpec', field: 'tuning_job.supervised_tuning_spec' },
  preference: { name: 'preferenceOptimizationSpec', field: 'tuning_job.preference_optimization_spec' },
} as const satisfies Record<TuningMethod, { name: string; field: string }>;

export const trainingDatasetField = (method: TuningMethod) => `${specs[method].field}.training_dataset_uri`;
export const validationDatasetField = (method: TuningMethod) => `${specs[method].field}.validation_dataset_uri`;

export interface TuningJobRequest {
  baseModel?: string;
  /** Continuous tuning: the tuned model to continue (projects/…/models/{n}[@version]) and, optionally, a checkpoint of it. */
  preTunedModel?: { tunedModelName: string; checkpointId?: string };
  method: TuningMethod;
  displayName?: string;
  description?: string;
  labels: Record<string, string>;
  trainingDatasetUri: string;
  validationDatasetUri?: string;
  hyperparameters: Partial<Hyperparameters>;
  exportLastCheckpointOnly: boolean;
  /** v1beta1, open models: the base model's folder in the project's object store (gs://bucket/models/x/). */
  customBaseModel?: string;
  /** v1beta1, open models: where the PEFT files are written (gs://bucket/prefix). */
  outputUri?: string;
}

/** Tuning methods other than supervised and preference tuning with LoRA, refused by name rather than ignored. */
const otherSpecs = [
  'distillationSpec', 'partnerModelTuningSpec', 'reinforcementTuningSpec', 'fullFineTuningSpec', 'veoTuningSpec', 'veoLoraTuningSpec',
];

export function parseTuningJob(body: unknown): TuningJobRequest {
  const job = isObject(body) ? body : {};
  const other = otherSpecs.find((spec) => job[spec] !== undefined && job[spec] !== null);
  if (other) {
    throw invalidArgument(
      `${other} is not supported: Attune runs supervised tuning (supervisedTuningSpec) and preference tuning (preferenceOptimizationSpec) with LoRA adapters.`,
      `tuning_job.${snake(other)}`,
    );
  }
  const given = (Object.keys(specs) as TuningMethod[]).filter((m) => job[specs[m].name] !== undefined && job[specs[m].name] !== null);
  if (given.length > 1) throw invalidArgument('Set one tuning spec: supervisedTuningSpec or preferenceOptimizationSpec, not both.', specs.preference.field);
  const method = given[0] ?? 'supervised';
  const { name, field } = specs[method];
  const spec = objectAt(job[name], field) ?? {};
  const trainingDatasetUri = stringAt(spec.trainingDatasetUri, trainingDatasetField(method));
  if (!trainingDatasetUri) throw invalidArgument(`${name}.trainingDatasetUri is required.`, trainingDatasetField(method));
  const tuningMode = enumAt(spec.tuningMode, `${field}.tuning_mode`, tuningModes);
  if (tuningMode === 'TUNING_MODE_FULL') {
    // Never a silent downgrade to an adapter: the caller asked for every weight to change.
    throw new ServiceError(
      'FAILED_PRECONDITION',
      'tuningMode TUNING_MODE_FULL is not available: Attune tunes LoRA adapters only (TUNING_MODE_PEFT_ADAPTER, the default). Nothing was created.',
    );
  }
  const preTuned = objectAt(job.preTunedModel, 'tuning_job.pre_tuned_model');
  const tunedModelName = preTuned && stringAt(preTuned.tunedModelName, 'tuning_job.pre_tuned_model.tuned_model_name');
  if (preTuned && !tunedModelName) throw invalidArgument('preTunedModel.tunedModelName is required.', 'tuning_job.pre_tuned_model.tuned_model_name');
  return {
    baseModel: stringAt(job.baseModel, 'tuning_job.base_model')?.replace(/^(projects\/[^/]+\/locations\/[^/]+\/)?publishers\/google\//, ''),
    preTunedModel: tunedModelName
      ? { tunedModelName, checkpointId: stringAt(preTuned!.checkpointId, 'tuning_job.pre_tuned_model.checkpoint_id') || undefined }
      : undefined,
    method,
    displayName: stringAt(job.tunedModelDisplayName, 'tuning_job.tuned_model_display_name'),
    description: stringAt(job.description, 'tuning_job.description'),
    labels: parseLabels(job.labels),
    trainingDatasetUri,
    validationDatasetUri: stringAt(spec.validationDatasetUri, validationDatasetField(method)) || undefined,
    hyperparameters: parseHyperParameters(objectAt(spec.hyperParameters, `${field}.hyper_parameters`) ?? {}, `${field}.hyper_parameters`, method),
    exportLastCheckpointOnly: booleanAt(spec.exportLastCheckpointOnly, `${field}.export_last_checkpoint_only`) ?? false,
    customBaseModel: stringAt(job.customBaseModel, 'tuning_job.custom_base_model') || undefined,
    outputUri: stringAt(job.outputUri, 'tuning_job.output_uri') || undefined,
  };
}

/** PreferenceOptimizationHyperParameters are SupervisedHyperParameters' epochCount, learningRateMultiplier and adapterSize, plus beta. */
function parseHyperParameters(h: Json, hyperParametersField: string, method: TuningMethod): Partial<Hyperparameters> {
  const at = (name: string) => `${hyperParametersField}.${name}`;
  if (method === 'supervised' && h.beta !== undefined && h.beta !== null) throw invalidArgument('beta applies to preference tuning (preferenceOptimizationSpec) only.', at('beta'));
  const adapterSize = enumAt(h.adapterSize, at('adapter_size'), adapterSizeNumbers);
  return {
    epochCount: numberAt(h.epochCount, at('epoch_count'), 'int64'),
    batchSize: numberAt(h.batchSize, at('batch_size'), 'int64'),
    learningRateMultiplier: numberAt(h.learningRateMultiplier, at('learning_rate_multiplier'), 'double'),
    learningRate: numberAt(h.learningRate, at('learning_rate'), 'double'),
    adapterRank: adapterSize && adapterSize !== 'ADAPTER_SIZE_UNSPECIFIED' ? adapterSizeRanks[adapterSize] : undefined,
    beta: numberAt(h.beta, at('beta'), 'double'),
  };
}

const tuningModes = { TUNING_MODE_UNSPECIFIED: 0, TUNING_MODE_FULL: 1, TUNING_MODE_PEFT_ADAPTER: 2 };

/** An enum given by name or by number; 0 (UNSPECIFIED) and absent mean the default. */
function enumAt<T extends string>(value: unknown, field: string, numbers: Record<T, number>): T | 'ADAPTER_SIZE_UNSPECIFIED' | undefined {
  if (value === undefined || value === null || value === '' || value === 0 || value === '0') return undefined;
  const names = Object.keys(numbers) as T[];
  const name =
    typeof value === 'string' && /^\d+$/.test(value) ? names.find((n) => numbers[n] === Number(value))
    : typeof value === 'number' ? names.find((n) => numbers[n] === value)
    : names.find((n) => n === value);
  if (name === undefined) {
    if (typeof value === 'string' && value.endsWith('_UNSPECIFIED')) return undefined;
    throw invalidArgument(`Invalid value at '${field}' (enum), ${JSON.stringify(value)}: expected one of ${names.join(', ')}.`, field);
  }
  return name;
}

/** int64 and double fields: JSON numbers or numeric strings. */
function numberAt(value: unknown, field: string, type: 'int64' | 'double'): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || (type === 'int64' && !Number.isInteger(n))) {
    throw invalidArgument(`Invalid value at '${field}' (TYPE_${type.toUpperCase()}), ${JSON.stringify(value)}`, field);
  }
  return n;
}

function booleanAt(value: unknown, field: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw invalidArgument(`Invalid value at '${field}' (TYPE_BOOL), ${JSON.stringify(value)}`, field);
  return value;
}

function stringAt(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalidArgument(`Invalid value at '${field}' (TYPE_STRING), ${JSON.stringify(value)}`, field);
  return value;
}

function objectAt(value: unknown, field: string): Json | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw invalidArgument(`Invalid value at '${field}': expected an object.`, field);
  return value;
}

const labelLimits = { count: 64, chars: 64 } as const;
/** Lowercase letters (international ones too), digits, underscores and dashes; keys start with a letter. */
const labelKey = /^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]*$/u;
const labelValue = /^[\p{Ll}\p{Lo}\p{N}_-]*$/u;

function parseLabels(value: unknown): Record<string, string> {
  const labels = objectAt(value, 'tuning_job.labels') ?? {};
  const entries = Object.entries(labels);
  if (entries.length > labelLimits.count) throw invalidArgument(`At most ${labelLimits.count} labels are allowed.`, 'tuning_job.labels');
  for (const [key, v] of entries) {
    const ok = typeof v === 'string' && labelKey.test(key) && labelValue.test(v) && [...key].length <= labelLimits.chars && [...v].length <= labelLimits.chars;
    if (!ok) {
      throw invalidArgument(
        `Label ${JSON.stringify(key)}: ${JSON.stringify(v)} is invalid. Keys and values hold at most ${labelLimits.chars} lowercase letters, digits, underscores and dashes, and keys start with a letter.`,
        'tuning_job.labels',
      );
    }
  }
  return labels as Record<string, string>;
}

const snake = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
