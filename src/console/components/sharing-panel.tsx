// Who may use, change and share a tuned model: its permissions (the owner, projects by their identity email,
// everyone), a form to share it, each grant's role and removal, and the transfer of ownership. Every action is
// the Gemini API's PermissionService, so the console can do exactly what the key's project may.
import { useState } from 'preact/hooks';
import { listProjects } from '../api/projects';
import { createPermission, deletePermission, listPermissions, setPermissionRole, transferOwnership, type Permission, type Role } from '../api/sharing';
import { useAsync } from '../hooks/use-async';
import { useSettings } from '../settings';
import { ConfirmDialog } from './dialog';
import { ErrorBanner } from './error-banner';

const roleWords: Record<Role, string> = { OWNER: 'Owner', WRITER: 'Writer: use, update, share', READER: 'Reader: use' };
const granteeOf = (p: Permission) => (p.granteeType === 'EVERYONE' ? 'Everyone with a key' : (p.emailAddress ?? ''));

export function SharingPanel({ id, onTransferred }: { id: string; onTransferred: () => void }) {
  const settings = useSettings();
  const identity = useAsync((signal) => listProjects(signal), [settings]);
  const permissions = useAsync((signal) => listPermissions(id, signal), [id, settings]);
  const [email, setEmail] = useState('');
  const [everyone, setEveryone] = useState(false);
  const [role, setRole] = useState<Role>('READER');
  const [transferTo, setTransferTo] = useState('');
  const [confirmingTransfer, setConfirmingTransfer] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  const act = async (action: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await action();
      permissions.reload();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  const share = (e: Event) => {
    e.preventDefault();
    void act(async () => {
      await createPermission(id, everyone ? { granteeType: 'EVERYONE', role: 'READER' } : { granteeType: 'USER', emailAddress: email.trim(), role });
      setEmail('');
    });
  };
  const transfer = async () => {
    const done = await act(() => transferOwnership(id, transferTo.trim()));
    setConfirmingTransfer(false);
    if (done) onTransferred();
  };

  return (
    <section class="panel sharing" aria-labelledby="sharing-title">
      <h2 id="sharing-title">Sharing</h2>
      {identity.data && (
        <p class="muted" data-testid="identity">
          This project is <strong>{identity.data.identity.email}</strong>, project number <strong>{identity.data.identity.projectNumber}</strong>: share those with
          whoever shares a model with you.
        </p>
      )}
      <ErrorBanner error={permissions.error} onRetry={permissions.reload} />
      {permissions.data && (
        <table class="permissions">
          <caption class="visually-hidden">Who may use this model</caption>
          <thead>
            <tr>
              <th scope="col">Who</th>
              <th scope="col">Role</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {permissions.data.map((p) => (
              <tr key={p.name}>
                <td>{granteeOf(p)}</td>
                <td>
                  {p.role === 'OWNER' || p.granteeType === 'EVERYONE' ? (
                    roleWords[p.role]
                  ) : (
                    <select
                      aria-label={`Role of ${granteeOf(p)}`}
                      value={p.role}
                      disabled={busy}
                      onChange={(e) => act(() => setPermissionRole(p, e.currentTarget.value as Role))}
                    >
                      <option value="READER">{roleWords.READER}</option>
                      <option value="WRITER">{roleWords.WRITER}</option>
                    </select>
                  )}
                </td>
                <td>
                  {p.role !== 'OWNER' && (
                    <button type="button" class="link" disabled={busy} onClick={() => act(() => deletePermission(p))} aria-label={`Stop sharing with ${granteeOf(p)}`}>
                      Remove
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="share-form" onSubmit={share}>
        <label>
          <input type="checkbox" checked={everyone} onChange={(e) => setEveryone(e.currentTarget.checked)} /> Everyone with a key may use it (reader)
        </label>
        {!everyone && (
          <div class="field-row">
            <div class="field">
              <label for="share-email">Share with (project email)</label>
              <input id="share-email" type="email" required placeholder="project-id@projects.attune.internal" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
            </div>
            <div class="field">
              <label for="share-role">Role</label>
              <select id="share-role" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
                <option value="READER">{roleWords.READER}</option>
                <option value="WRITER">{roleWords.WRITER}</option>
              </select>
            </div>
          </div>
        )}
        <button type="submit" disabled={busy || (!everyone && !email.trim())}>
          Share
        </button>
      </form>
      <form
        class="share-form"
        onSubmit={(e) => {
          e.preventDefault();
          setConfirmingTransfer(true);
        }}
      >
        <div class="field">
          <label for="transfer-email">Transfer ownership to (project email)</label>
          <input id="transfer-email" type="email" required value={transferTo} onInput={(e) => setTransferTo(e.currentTarget.value)} />
        </div>
        <button type="submit" class="danger" disabled={busy || !transferTo.trim()}>
          Transfer…
        </button>
      </form>
      <ErrorBanner error={error} />
      <ConfirmDialog
        open={confirmingTransfer}
        title="Transfer ownership?"
        confirmLabel="Transfer"
        danger
        busy={busy}
        onConfirm={transfer}
        onClose={() => setConfirmingTransfer(false)}
      >
        <p>
          {transferTo.trim()} becomes the owner. This project keeps the model as a writer: it may use, update and share it, but no longer delete it, and
          its tuning job moves to the new owner's project.
        </p>
      </ConfirmDialog>
    </section>
  );
}
