// What the user enters once and the browser keeps (localStorage): the API key, and the project and location
// used in Vertex paths. Components subscribe so a change in the settings dialog reloads what they show.
import { useEffect, useState } from 'preact/hooks';

export interface Settings {
  /** Sent as x-goog-api-key; empty for a keyless server on loopback. */
  apiKey: string;
  /** The {project} of /projects/{project}/locations/…; with a key, the key's project. */
  project: string;
  /** The {location}: jobs are listed where they were created (Gemini API models are in us-central1). */
  location: string;
}

const storageKey = 'attune.console.settings';
const defaults: Settings = { apiKey: '', project: 'local', location: 'us-central1' };
const listeners = new Set<(settings: Settings) => void>();

function read(): Settings {
  try {
    const stored = JSON.parse(localStorage.getItem(storageKey) ?? '{}') as Partial<Settings>;
    return {
      apiKey: typeof stored.apiKey === 'string' ? stored.apiKey : defaults.apiKey,
      project: typeof stored.project === 'string' && stored.project ? stored.project : defaults.project,
      location: typeof stored.location === 'string' && stored.location ? stored.location : defaults.location,
    };
  } catch {
    return { ...defaults }; // storage blocked (private mode) or corrupt: start from the defaults
  }
}

let current = read();

export function getSettings(): Settings {
  return current;
}

export function saveSettings(next: Settings): void {
  current = { apiKey: next.apiKey.trim(), project: next.project.trim() || defaults.project, location: next.location.trim() || defaults.location };
  try {
    localStorage.setItem(storageKey, JSON.stringify(current));
  } catch {
    // Not persisted, but still used for this tab.
  }
  for (const listener of listeners) listener(current);
}

/** The current settings; re-renders the caller when they are saved. */
export function useSettings(): Settings {
  const [settings, setSettings] = useState(current);
  useEffect(() => {
    listeners.add(setSettings);
    return () => void listeners.delete(setSettings);
  }, []);
  return settings;
}
