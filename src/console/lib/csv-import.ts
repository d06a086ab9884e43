// A CSV of examples (as AI Studio's old tuning page took them) turned into JSONL: one column is the input,
// one the output. The first row names the columns; the usual names are recognised, otherwise the first two
// columns are used. Parsing is papaparse's (quotes, embedded commas and newlines, BOM).
import Papa from 'papaparse';

const inputNames = ['text_input', 'input', 'prompt', 'question', 'instruction', 'user', 'text'];
const outputNames = ['output', 'response', 'answer', 'completion', 'target', 'model', 'label'];

/** Whether a file that is not JSONL reads as a table of at least two columns. */
export function looksLikeCsv(text: string): boolean {
  const first = text.replace(/^\uFEFF/, '').trimStart();
  if (first === '' || first.startsWith('{') || first.startsWith('[')) return false;
  const { data } = Papa.parse<string[]>(first, { preview: 5, skipEmptyLines: true });
  return data.length >= 2 && data.every((row) => row.length >= 2 && row.length === data[0]!.length);
}

export interface CsvImport {
  jsonl: string;
  examples: number;
  inputColumn: string;
  outputColumn: string;
  /** Rows left out because their input or output was empty. */
  skipped: number;
}

export function csvToJsonl(text: string): CsvImport {
  const { data, meta } = Papa.parse<Record<string, string>>(text.replace(/^\uFEFF/, ''), { header: true, skipEmptyLines: true, transformHeader: (h) => h.trim() });
  const columns = meta.fields ?? [];
  const find = (names: string[]) => columns.find((c) => names.includes(c.toLowerCase()));
  const inputColumn = find(inputNames) ?? columns[0] ?? '';
  const outputColumn = find(outputNames.filter((n) => n !== inputColumn.toLowerCase())) ?? columns.find((c) => c !== inputColumn) ?? '';
  const lines: string[] = [];
  let skipped = 0;
  for (const row of data) {
    const input = row[inputColumn]?.trim() ?? '';
    const output = row[outputColumn]?.trim() ?? '';
    if (!input || !output) {
      skipped++;
      continue;
    }
    lines.push(JSON.stringify({ text_input: input, output }));
  }
  return { jsonl: lines.join('\n') + (lines.length ? '\n' : ''), examples: lines.length, inputColumn, outputColumn, skipped };
}
