// The browser-side dataset check's findings: errors by line (they block submitting) and skipped lines.
import type { DatasetCheck } from '../lib/dataset-check';

export function DatasetProblems({ id, what, check }: { id: string; what: string; check?: DatasetCheck }) {
  if (!check) return null;
  if (check.errors.length === 0) {
    return (
      <div id={id} class="check-ok" role="status">
        <p>
          {what}: {check.exampleCount} example{check.exampleCount === 1 ? '' : 's'} read, no errors.
        </p>
        {check.warnings.length > 0 && (
          <ul class="warnings">
            {check.warnings.map((w) => (
              <li>{w.message}</li>
            ))}
          </ul>
        )}
      </div>
    );
  }
  const count = check.errors.length + check.moreErrors;
  return (
    <div id={id} class="check-errors" role="alert">
      <p>
        {what}: {count} error{count === 1 ? '' : 's'}. Nothing is uploaded until {count === 1 ? 'it is' : 'they are'} fixed.
      </p>
      <ul>
        {check.errors.map((e) => (
          <li data-line={e.line}>{e.message}</li>
        ))}
      </ul>
      {check.moreErrors > 0 && <p>…and {check.moreErrors} more.</p>}
    </div>
  );
}
