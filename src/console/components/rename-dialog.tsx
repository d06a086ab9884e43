// Renames a tuned model (its job's display name) in place; the server's refusal shows in the dialog.
import { useState } from 'preact/hooks';
import { renameTunedModel } from '../api/gemini';
import { tuningLimits } from '../../service/tuning/defaults.js';
import { Dialog } from './dialog';
import { ErrorBanner } from './error-banner';

/** A rename goes through the Gemini API, whose display names are at most this long. */
const maxChars = tuningLimits.displayNameChars.gemini;

export function RenameDialog({ id, name, onClose, onRenamed }: { id: string | undefined; name: string; onClose: () => void; onRenamed: (name: string) => void }) {
  return (
    <Dialog open={id !== undefined} title="Rename tuned model" onClose={onClose}>
      {id !== undefined && <RenameForm id={id} name={name} onClose={onClose} onRenamed={onRenamed} />}
    </Dialog>
  );
}

function RenameForm({ id, name, onClose, onRenamed }: { id: string; name: string; onClose: () => void; onRenamed: (name: string) => void }) {
  const [value, setValue] = useState(name.slice(0, maxChars));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  return (
    <form
      onSubmit={async (event) => {
        event.preventDefault();
        setBusy(true);
        setError(undefined);
        try {
          await renameTunedModel(id, value.trim());
          onRenamed(value.trim());
        } catch (failure) {
          setError(failure);
        } finally {
          setBusy(false);
        }
      }}
    >
      <div class="field">
        <label for="rename-input">Display name</label>
        <input id="rename-input" required maxLength={maxChars} value={value} onInput={(e) => setValue(e.currentTarget.value)} aria-describedby="rename-hint" />
        <p id="rename-hint" class="hint">
          At most {maxChars} characters.
        </p>
      </div>
      <ErrorBanner error={error} />
      <div class="actions">
        <button type="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy || !value.trim()}>
          {busy ? 'Renaming…' : 'Rename'}
        </button>
      </div>
    </form>
  );
}
