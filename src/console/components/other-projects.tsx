// Jobs of other projects are otherwise invisible (a job created with curl under projects/my-project never
// shows while the console looks at `local`): on a keyless server, name the projects that hold jobs and
// switch to one in a click.
import { listProjects } from '../api/projects';
import { useAsync } from '../hooks/use-async';
import { formatNumber } from '../lib/format';
import { getSettings, saveSettings, useSettings } from '../settings';

const jobs = (n: number) => `${formatNumber(n)} ${n === 1 ? 'job' : 'jobs'}`;

export function OtherProjects() {
  const settings = useSettings();
  const list = useAsync((signal) => listProjects(signal), [settings]);
  if (!list.data?.keyless) return null;
  const others = list.data.projects.filter((p) => p.projectId !== settings.project && p.tunedModelCount > 0);
  if (others.length === 0) return null;
  return (
    <div class="notice other-projects" data-testid="other-projects">
      <p>
        This list shows project <strong>{settings.project}</strong>. Other projects on this server have jobs:
      </p>
      <ul>
        {others.map((p) => (
          <li>
            <button type="button" class="link" onClick={() => saveSettings({ ...getSettings(), project: p.projectId })}>
              Switch to {p.projectId}
            </button>{' '}
            <span class="muted">({jobs(p.tunedModelCount)})</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** For the settings dialog: the projects a keyless caller may pick, as suggestions for the Project field. */
export function useProjectChoices(): { projectId: string; label: string }[] {
  const list = useAsync((signal) => listProjects(signal).catch(() => undefined), []);
  if (!list.data?.keyless) return [];
  return list.data.projects.map((p) => ({ projectId: p.projectId, label: jobs(p.tunedModelCount) }));
}
