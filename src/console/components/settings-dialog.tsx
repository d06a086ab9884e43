// The API key and project, entered once and kept in this browser.
import { useState } from 'preact/hooks';
import { getSettings, saveSettings } from '../settings';
import { Dialog } from './dialog';
import { useProjectChoices } from './other-projects';

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
  const [location, setLocation] = useState(getSettings().location);
  const [showKey, setShowKey] = useState(false);
  const choices = useProjectChoices();
  const keyInput = { id: 'settings-key', autocomplete: 'off', spellcheck: false, value: apiKey, onInput: (e: Event) => setApiKey((e.currentTarget as HTMLInputElement).value) };
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        saveSettings({ apiKey, project, location });
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
        <input id="settings-project" required list="settings-projects" value={project} onInput={(e) => setProject(e.currentTarget.value)} />
        <datalist id="settings-projects">
          {choices.map((c) => (
            <option value={c.projectId}>{c.label}</option>
          ))}
        </datalist>
        <p class="hint">
          Used in Vertex paths (<code>projects/PROJECT/locations/LOCATION</code>). With a key, it must be the key's project; without one, any project that has no keys
          {choices.length > 1 ? ` (${choices.map((c) => `${c.projectId}: ${c.label}`).join(', ')})` : ''}.
        </p>
      </div>
      <div class="field">
        <label for="settings-location">Location</label>
        <input id="settings-location" required value={location} onInput={(e) => setLocation(e.currentTarget.value)} />
        <p class="hint">Jobs are listed in the location they were created in; models tuned through the Gemini API are in us-central1.</p>
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
