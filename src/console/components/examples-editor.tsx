// Examples typed in as a table of input and output. Pasting two tab-separated columns (from a
// spreadsheet) into any cell fills rows from there.
import { emptyRow, rowsFromTabular, type ExampleRow } from '../lib/examples-table';

export function ExamplesEditor({ rows, onChange }: { rows: ExampleRow[]; onChange: (rows: ExampleRow[]) => void }) {
  const update = (index: number, field: keyof ExampleRow, value: string) => onChange(rows.map((row, i) => (i === index ? { ...row, [field]: value } : row)));
  const onPaste = (index: number) => (event: ClipboardEvent) => {
    const pasted = rowsFromTabular(event.clipboardData?.getData('text') ?? '');
    if (!pasted) return;
    event.preventDefault();
    onChange([...rows.slice(0, index), ...pasted, ...rows.slice(index + 1)]);
  };
  return (
    <div class="examples-editor">
      <table>
        <caption class="visually-hidden">Training examples</caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Input</th>
            <th scope="col">Output</th>
            <th scope="col">
              <span class="visually-hidden">Remove</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr>
              <td class="muted">{i + 1}</td>
              <td>
                <textarea rows={1} aria-label={`Input of example ${i + 1}`} value={row.input} onInput={(e) => update(i, 'input', e.currentTarget.value)} onPaste={onPaste(i)} />
              </td>
              <td>
                <textarea rows={1} aria-label={`Output of example ${i + 1}`} value={row.output} onInput={(e) => update(i, 'output', e.currentTarget.value)} onPaste={onPaste(i)} />
              </td>
              <td>
                <button type="button" class="link" aria-label={`Remove example ${i + 1}`} onClick={() => onChange(rows.length > 1 ? rows.filter((_, j) => j !== i) : [emptyRow()])}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" onClick={() => onChange([...rows, emptyRow()])}>
        Add example
      </button>
      <p class="hint">Paste two tab-separated columns (input, output) from a spreadsheet into a cell to add many rows.</p>
    </div>
  );
}
