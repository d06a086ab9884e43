/**
 * Per-example length limits, in characters (Unicode code points), as the
 * Gemini/Vertex tuning services apply them.
 */

/** The user and system text of one example, summed. */
export const MAX_INPUT_CHARS = 40_000;

/** Each model turn. */
export const MAX_OUTPUT_CHARS = 5_000;

/** Counts code points, so an emoji is one character as users would count it. */
export function charCount(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
