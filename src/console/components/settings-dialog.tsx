// The API key and project, entered once and kept in this browser.
import { useState } from 'preact/hooks';
import { getSettings, location, saveSettings } from '../settings';
import { Dialog } from './dialog';

export function SettingsDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  return (
    <Dialog open={open} title="Settings" onClose={onClose}>
      <SettingsForm onDone={onClose} />
    </Dialog>
  );
}

function SettingsForm({ onDone }: { onDone: () => void }) {
  const [apiKey, setApiKey] = useState(getSettings().apiKey);
  const [project, setProject] = useState(getSettings().project);
  const [showKey, setShowKey] = useState(false);
  const keyInput = { id: 'settings-key', autocomplete: 'off', spellcheck: false, value: apiKey, onInput: (e: Event) => setApiKey((e.currentTarget as HTMLInputElement).value) };
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        saveSettings({ apiKey, project });
        onDone();
      }}
    >
      <div class="field">
        <label for="settings-key">API key</label>
        <div class="inline">
          {showKey ? <input type="text" {...keyInput} /> : <input type="password" {...keyInput} />}
          <button type="button" onClick={() => setShowKey(!showKey)} aria-pressed={showKey}>
            {showKey ? 'Hide' : 'Show'}
          </button>
        </div>
        <p class="hint">
          From <code>attune keys create --project NAME</code>. Leave empty for a server started with <code>--keyless</code> on this machine.
          It is kept in this browser's local storage and sent as <code>x-goog-api-key</code>.
        </p>
      </div>
      <div class="field">
        <label for="settings-project">Project</label>
        <input id="settings-project" required value={project} onInput={(e) => setProject(e.currentTarget.value)} />
        <p class="hint">
          Used in Vertex paths (<code>projects/PROJECT/locations/{location}</code>). With a key, the key's project.
        </p>
      </div>
      <div class="actions">
        <button type="button" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" class="primary">
          Save
        </button>
      </div>
    </form>
  );
}
