// The form's hyperparameter fields ↔ SupervisedHyperParameters. Empty fields are left out, so the server
// fills its defaults (and the validateOnly answer shows which).
import type { HyperParameters } from '../api/vertex';

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
