// Epochs, batch size, learning rate (absolute or a multiplier of the default) and adapter size. Blank
// fields use the server's defaults; once the server has checked the dataset, the defaults it chose show.
import type { HyperParameters } from '../api/vertex';
import { adapterRank, adapterSizes, type HyperparameterFields } from '../lib/hyperparameters';

export interface HyperparameterInputsProps {
  value: HyperparameterFields;
  onChange: (value: HyperparameterFields) => void;
  /** What the server would use (validateOnly answer). */
  filled?: HyperParameters;
}

export function HyperparameterInputs({ value, onChange, filled }: HyperparameterInputsProps) {
  const set = (patch: Partial<HyperparameterFields>) => onChange({ ...value, ...patch });
  const placeholder = (given: unknown) => (given === undefined ? 'default' : `default: ${String(given)}`);
  const filledRate = value.learningRateMode === 'rate' ? filled?.learningRate : filled?.learningRateMultiplier;
  const filledRank = adapterRank(filled?.adapterSize);
  return (
    <fieldset>
      <legend>Hyperparameters</legend>
      <div class="field-row">
        <div class="field">
          <label for="epochs">Epochs</label>
          <input id="epochs" type="number" inputMode="numeric" min={1} step={1} value={value.epochs} placeholder={placeholder(filled?.epochCount)} onInput={(e) => set({ epochs: e.currentTarget.value })} />
        </div>
        <div class="field">
          <label for="batch-size">Batch size</label>
          <input id="batch-size" type="number" inputMode="numeric" min={1} step={1} value={value.batchSize} placeholder={placeholder(filled?.batchSize)} onInput={(e) => set({ batchSize: e.currentTarget.value })} />
        </div>
      </div>
      <details class="advanced">
        <summary>Advanced options</summary>
        <fieldset class="inline-fieldset">
          <legend>Learning rate</legend>
          <label>
            <input type="radio" name="lr-mode" checked={value.learningRateMode === 'multiplier'} onChange={() => set({ learningRateMode: 'multiplier' })} /> Multiplier of the default
          </label>
          <label>
            <input type="radio" name="lr-mode" checked={value.learningRateMode === 'rate'} onChange={() => set({ learningRateMode: 'rate' })} /> Absolute rate
          </label>
        </fieldset>
        <div class="field-row">
          <div class="field">
            <label for="learning-rate">{value.learningRateMode === 'rate' ? 'Learning rate' : 'Learning rate multiplier'}</label>
            <input id="learning-rate" type="number" inputMode="decimal" min={0} step="any" value={value.learningRate} placeholder={placeholder(filledRate)} onInput={(e) => set({ learningRate: e.currentTarget.value })} />
          </div>
          <div class="field">
            <label for="adapter-size">Adapter size (LoRA rank)</label>
            <select id="adapter-size" value={value.adapterSize} onChange={(e) => set({ adapterSize: e.currentTarget.value })}>
              <option value="">{filledRank ? `Default (${filledRank})` : 'Default'}</option>
              {adapterSizes.map((a) => (
                <option value={a.value}>{a.rank}</option>
              ))}
            </select>
          </div>
        </div>
      </details>
    </fieldset>
  );
}
