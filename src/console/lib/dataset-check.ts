// Checks a JSONL dataset in the browser before anything is uploaded, with the server's own example
// parser (src/engine/data), so every malformed line is listed at once, by line number, in the server's
// words. Over-length examples are warnings: Vertex tuning skips them and reports them in tuningDataStats.
import { jsonlLines, lengthProblem, parseExample, parsePreferenceExample, type DatasetKind } from '../../engine/data/examples.js';

export interface LineProblem {
  /** 1-based line in the file; absent for whole-file problems. */
  line?: number;
  message: string;
}

export interface DatasetCheck {
  /** Lines holding a usable example. */
  exampleCount: number;
  errors: LineProblem[];
  /** Examples the server will skip for their length. */
  warnings: LineProblem[];
  /** More errors than listed (the list stops at maxListed). */
  moreErrors: number;
}

const maxListed = 50;

export function checkJsonl(text: string, kind: DatasetKind = 'supervised'): DatasetCheck {
  const parse = kind === 'preference' ? parsePreferenceExample : parseExample;
  const check: DatasetCheck = { exampleCount: 0, errors: [], warnings: [], moreErrors: 0 };
  const addError = (problem: LineProblem) => {
    if (check.errors.length < maxListed) check.errors.push(problem);
    else check.moreErrors++;
  };
  const lines = jsonlLines(text);
  for (const { line, value } of lines) {
    try {
      const example = parse(value(), `line ${line}`);
      const tooLong = lengthProblem(example);
      if (tooLong) check.warnings.push({ line, message: `line ${line} will be skipped: ${tooLong}` });
      else check.exampleCount++;
    } catch (error) {
      addError({ line, message: (error as Error).message });
    }
  }
  if (lines.length === 0) addError({ message: 'the dataset has no examples' });
  return check;
}

export const checkPassed = (check: DatasetCheck): boolean => check.errors.length === 0 && check.exampleCount > 0;
