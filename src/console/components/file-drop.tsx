// A file input that also takes a file dropped on it. The input stays a real, labelled <input type=file>,
// so keyboard and screen-reader users choose files the usual way.
import { useState } from 'preact/hooks';

export interface FileDropProps {
  id: string;
  label: string;
  file?: File;
  onFile: (file: File | undefined) => void;
  describedBy?: string;
}

const kib = (bytes: number) => (bytes < 1024 ? `${bytes} bytes` : `${(bytes / 1024).toFixed(1)} KiB`);

export function FileDrop({ id, label, file, onFile, describedBy }: FileDropProps) {
  const [dragging, setDragging] = useState(false);
  return (
    <div
      class={`drop-zone${dragging ? ' dragging' : ''}`}
      onDragOver={(event) => {
        event.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={(event) => {
        event.preventDefault();
        setDragging(false);
        const dropped = event.dataTransfer?.files[0];
        if (dropped) onFile(dropped);
      }}
    >
      <label for={id}>{label}</label>
      <input
        id={id}
        type="file"
        accept=".jsonl,.json,.txt,application/jsonl,application/json,text/plain"
        aria-describedby={describedBy}
        onChange={(event) => {
          const chosen = event.currentTarget.files?.[0];
          if (chosen) onFile(chosen);
          event.currentTarget.value = ''; // choosing the same file again still fires change
        }}
      />
      <p class="hint">
        {file ? (
          <>
            <strong>{file.name}</strong> ({kib(file.size)}){' '}
            <button type="button" class="link" onClick={() => onFile(undefined)}>
              Remove
            </button>
          </>
        ) : (
          'Choose a JSONL file or drop one here.'
        )}
      </p>
    </div>
  );
}
