// Examples typed or pasted into the form's table, as the JSONL the server reads.
export interface ExampleRow {
  input: string;
  output: string;
}

export const emptyRow = (): ExampleRow => ({ input: '', output: '' });

/** Rows that have anything in them, as {"text_input", "output"} lines. Blank rows are left out. */
export function rowsToJsonl(rows: ExampleRow[]): string {
  return rows
    .filter((row) => row.input.trim() !== '' || row.output.trim() !== '')
    .map((row) => JSON.stringify({ text_input: row.input, output: row.output }))
    .join('\n');
}

/** Text pasted from a spreadsheet: one example per line, input and output separated by a tab. */
export function rowsFromTabular(text: string): ExampleRow[] | undefined {
  if (!text.includes('\t')) return undefined;
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [input = '', ...rest] = line.split('\t');
      return { input, output: rest.join('\t') };
    });
}
