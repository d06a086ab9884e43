// Epochs, batch size, learning rate (absolute or a multiplier of the default) and adapter size. Blank
// fields use the server's defaults; once the server has checked the dataset, the defaults it chose show.
// What is wrong with a field is said under it, in words (and what is merely unusual, as a warning).
import type { ComponentChildren } from 'preact';
import type { HyperParameters } from '../api/vertex';
import { adapterRank, adapterSizes, type HyperparameterCheck, type HyperparameterField, type HyperparameterFields } from '../lib/hyperparameters';

export interface HyperparameterInputsProps {
  value: HyperparameterFields;
  onChange: (value: HyperparameterFields) => void;
  /** What the server would use (validateOnly answer). */
  filled?: HyperParameters;
  check: HyperparameterCheck;
  /** A continued run keeps its source's adapter size: the select is shown disabled, with why. */
  adapterSizeFixed?: boolean;
}

const messageId = (id: string) => `${id}-message`;

/** A field's label, input and message; the input is marked invalid and described by the message. */
function Field({ id, label, error, warning, children }: { id: string; label: string; error?: string; warning?: string; children: ComponentChildren }) {
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children}
      {error ? (
        <p id={messageId(id)} class="field-error" data-testid={messageId(id)}>
          {error}
        </p>
      ) : warning ? (
        <p id={messageId(id)} class="field-warning" data-testid={messageId(id)}>
          {warning}
        </p>
      ) : null}
    </div>
  );
}

export function HyperparameterInputs({ value, onChange, filled, check, adapterSizeFixed = false }: HyperparameterInputsProps) {
  const set = (patch: Partial<HyperparameterFields>) => onChange({ ...value, ...patch });
  const placeholder = (given: unknown) => (given === undefined ? 'default' : `default: ${String(given)}`);
  const filledRate = value.learningRateMode === 'rate' ? filled?.learningRate : filled?.learningRateMultiplier;
  const filledRank = adapterRank(filled?.adapterSize);
  const state = (field: HyperparameterField, id: string) => ({
    'aria-invalid': check.errors[field] ? ('true' as const) : undefined,
    'aria-describedby': check.errors[field] || check.warnings[field] ? messageId(id) : undefined,
  });
  return (
    <fieldset>
      <legend>Hyperparameters</legend>
      <div class="field-row">
        <Field id="epochs" label="Epochs" error={check.errors.epochs}>
          <input id="epochs" type="number" inputMode="numeric" min={1} step={1} value={value.epochs} placeholder={placeholder(filled?.epochCount)} onInput={(e) => set({ epochs: e.currentTarget.value })} {...state('epochs', 'epochs')} />
        </Field>
        <Field id="batch-size" label="Batch size" error={check.errors.batchSize}>
          <input id="batch-size" type="number" inputMode="numeric" min={1} step={1} value={value.batchSize} placeholder={placeholder(filled?.batchSize)} onInput={(e) => set({ batchSize: e.currentTarget.value })} {...state('batchSize', 'batch-size')} />
        </Field>
      </div>
      <details class="advanced" open={!!(check.errors.learningRate || check.warnings.learningRate) || undefined}>
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
          <Field id="learning-rate" label={value.learningRateMode === 'rate' ? 'Learning rate' : 'Learning rate multiplier'} error={check.errors.learningRate} warning={check.warnings.learningRate}>
            <input id="learning-rate" type="number" inputMode="decimal" min={0} step="any" value={value.learningRate} placeholder={placeholder(filledRate)} onInput={(e) => set({ learningRate: e.currentTarget.value })} {...state('learningRate', 'learning-rate')} />
          </Field>
          <div class="field">
            <label for="adapter-size">Adapter size (LoRA rank)</label>
            <select id="adapter-size" value={adapterSizeFixed ? '' : value.adapterSize} disabled={adapterSizeFixed} onChange={(e) => set({ adapterSize: e.currentTarget.value })}>
              <option value="">{adapterSizeFixed ? `The continued model's${filledRank ? ` (${filledRank})` : ''}` : filledRank ? `Default (${filledRank})` : 'Default'}</option>
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
