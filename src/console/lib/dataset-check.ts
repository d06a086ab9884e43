// Checks a JSONL dataset in the browser before anything is uploaded, with the server's own example
// parser (src/engine/data), so every malformed line is listed at once, by line number, in the server's
// words. Over-length examples are warnings: Vertex tuning skips them and reports them in tuningDataStats.
import { lengthProblem, parseExample } from '../../engine/data/examples.js';

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

export function checkJsonl(text: string): DatasetCheck {
  const check: DatasetCheck = { exampleCount: 0, errors: [], warnings: [], moreErrors: 0 };
  const addError = (problem: LineProblem) => {
    if (check.errors.length < maxListed) check.errors.push(problem);
    else check.moreErrors++;
  };
  let nonBlank = 0;
  text
    .replace(/^\uFEFF/, '')
    .split('\n')
    .forEach((raw, i) => {
      if (raw.trim() === '') return;
      nonBlank++;
      const line = i + 1;
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (error) {
        addError({ line, message: `line ${line}: invalid JSON: ${(error as Error).message}` });
        return;
      }
      try {
        const example = parseExample(value, `line ${line}`);
        const tooLong = lengthProblem(example);
        if (tooLong) check.warnings.push({ line, message: `line ${line} will be skipped: ${tooLong}` });
        else check.exampleCount++;
      } catch (error) {
        addError({ line, message: (error as Error).message });
      }
    });
  if (nonBlank === 0) addError({ message: 'the dataset has no examples' });
  return check;
}

export const checkPassed = (check: DatasetCheck): boolean => check.errors.length === 0 && check.exampleCount > 0;
