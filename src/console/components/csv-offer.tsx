// A CSV dropped where JSONL is expected gets an offer to import it, not a JSON parse error per line.
import { csvToJsonl } from '../lib/csv-import';
import { formatNumber } from '../lib/format';

export function CsvOffer({ id, fileName, text, onImport }: { id: string; fileName: string; text: string; onImport: (jsonl: string, fileName: string) => void }) {
  const imported = csvToJsonl(text);
  const jsonlName = `${fileName.replace(/\.(csv|tsv|txt)$/i, '')}.jsonl`;
  return (
    <div id={id} class="notice csv-offer" role="status" data-testid={`${id}-csv`}>
      <p>
        <strong>{fileName}</strong> looks like CSV, not JSONL. Import it? Each row becomes an example: input from column{' '}
        <code>{imported.inputColumn}</code>, output from column <code>{imported.outputColumn}</code> ({formatNumber(imported.examples)}{' '}
        {imported.examples === 1 ? 'example' : 'examples'}
        {imported.skipped ? `; ${formatNumber(imported.skipped)} rows with an empty cell left out` : ''}).
      </p>
      <button type="button" class="primary" disabled={imported.examples === 0} onClick={() => onImport(imported.jsonl, jsonlName)}>
        Import as JSONL
      </button>
    </div>
  );
}
