// The form's hyperparameter fields ↔ SupervisedHyperParameters. Empty fields are left out, so the server
// fills its defaults (and the validateOnly answer shows which).
import type { HyperParameters } from '../api/vertex';
import { tuningDefaults, tuningLimits } from '../../service/tuning/defaults.js';

export interface HyperparameterFields {
  epochs: string;
  batchSize: string;
  learningRateMode: 'multiplier' | 'rate';
  learningRate: string;
  adapterSize: string;
}

export const emptyHyperparameters = (): HyperparameterFields => ({ epochs: '', batchSize: '', learningRateMode: 'multiplier', learningRate: '', adapterSize: '' });

/** LoRA rank → the Vertex enum (whose wire integers are not the ranks). */
export const adapterSizes: { rank: number; value: string }[] = [
  { rank: 1, value: 'ADAPTER_SIZE_ONE' },
  { rank: 2, value: 'ADAPTER_SIZE_TWO' },
  { rank: 4, value: 'ADAPTER_SIZE_FOUR' },
  { rank: 8, value: 'ADAPTER_SIZE_EIGHT' },
  { rank: 16, value: 'ADAPTER_SIZE_SIXTEEN' },
  { rank: 32, value: 'ADAPTER_SIZE_THIRTY_TWO' },
];

export const adapterRank = (value: string | undefined): number | undefined => adapterSizes.find((a) => a.value === value)?.rank;

export function toHyperParameters(fields: HyperparameterFields): HyperParameters {
  const number = (text: string) => (text.trim() === '' ? undefined : Number(text));
  const rate = number(fields.learningRate);
  const params: HyperParameters = {
    epochCount: number(fields.epochs),
    batchSize: number(fields.batchSize),
    ...(fields.learningRateMode === 'rate' ? { learningRate: rate } : { learningRateMultiplier: rate }),
    adapterSize: fields.adapterSize || undefined,
  };
  return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined)) as HyperParameters;
}

export type HyperparameterField = 'epochs' | 'batchSize' | 'learningRate';

export interface HyperparameterCheck {
  /** What is wrong with a field, in words; the job cannot start while any is set. */
  errors: Partial<Record<HyperparameterField, string>>;
  /** Allowed but unusual (a learning rate far from where LoRA tunes well). */
  warnings: Partial<Record<HyperparameterField, string>>;
}

const plain = (n: number) => n.toLocaleString('en-US', { maximumSignificantDigits: 6 });

/** The checks the server makes at create (service/tuning/service.ts), in words, at the field they concern. */
export function checkHyperparameters(fields: HyperparameterFields): HyperparameterCheck {
  const errors: HyperparameterCheck['errors'] = {};
  const warnings: HyperparameterCheck['warnings'] = {};
  const whole = (field: 'epochs' | 'batchSize', what: string, max: number) => {
    const text = fields[field].trim();
    if (text === '') return;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max) errors[field] = `The ${what} must be a whole number from 1 to ${plain(max)}${text ? `, not ${text}` : ''}.`;
  };
  whole('epochs', 'number of epochs', tuningLimits.maxEpochCount);
  whole('batchSize', 'batch size', tuningLimits.maxBatchSize);

  const text = fields.learningRate.trim();
  if (text !== '') {
    const n = Number(text);
    const multiplier = fields.learningRateMode === 'multiplier';
    const max = multiplier ? tuningLimits.maxLearningRate / tuningDefaults.baseLearningRate : tuningLimits.maxLearningRate;
    const what = multiplier ? 'learning rate multiplier' : 'learning rate';
    if (!Number.isFinite(n) || n <= 0 || n > max) {
      errors.learningRate = `The ${what} must be a number above 0 and at most ${plain(max)}, not ${text}.`;
    } else {
      const rate = multiplier ? n * tuningDefaults.baseLearningRate : n;
      const { min: low, max: high } = tuningDefaults.usualLearningRates;
      if (rate < low || rate > high) {
        const means = multiplier ? `A multiplier of ${text} means a peak learning rate of ${plain(rate)} (the default is ${plain(tuningDefaults.baseLearningRate)}), ` : `A learning rate of ${text} is `;
        warnings.learningRate =
          means +
          `${rate > high ? 'above' : 'below'} the ${plain(low)} to ${plain(high)} where LoRA usually tunes well: ` +
          (rate > high ? 'the loss may jump or diverge.' : 'the model may barely change.');
      }
    }
  }
  return { errors, warnings };
}

/** The form field a server's field violation names (…hyper_parameters.epoch_count → epochs). */
export function fieldOfViolation(field: string | undefined): HyperparameterField | undefined {
  const last = field?.split('.').at(-1);
  if (last === 'epoch_count') return 'epochs';
  if (last === 'batch_size') return 'batchSize';
  if (last === 'learning_rate' || last === 'learning_rate_multiplier') return 'learningRate';
  return undefined;
}
