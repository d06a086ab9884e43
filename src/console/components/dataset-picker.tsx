// Datasets already in Attune's store, picked by gs:// URI instead of uploading: the field suggests every
// object in the project's buckets and takes any URI typed. The server checks the file (validateOnly).
import type { StoredObject } from '../api/storage';
import { formatNumber } from '../lib/format';

export interface DatasetPickerProps {
  id: string;
  label: string;
  value: string;
  onChange: (uri: string) => void;
  objects: StoredObject[] | undefined;
  error?: string;
  hint?: string;
}

export function DatasetPicker({ id, label, value, onChange, objects, error, hint }: DatasetPickerProps) {
  const listId = `${id}-objects`;
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      <input
        id={id}
        type="text"
        list={listId}
        spellcheck={false}
        autocomplete="off"
        placeholder="gs://bucket/path/to/file.jsonl"
        value={value}
        onInput={(e) => onChange(e.currentTarget.value.trim())}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={`${id}-message`}
      />
      <datalist id={listId}>
        {(objects ?? []).map((o) => (
          <option value={`gs://${o.bucket}/${o.name}`}>{o.size ? `${formatNumber(o.size)} bytes` : ''}</option>
        ))}
      </datalist>
      <p id={`${id}-message`} class={error ? 'field-error' : 'hint'} data-testid={`${id}-message`}>
        {error ?? hint}
      </p>
    </div>
  );
}
