// Resource ids as Google mints them: Gemini tuned-model slugs (gemini-api.md §5) and Vertex numbers (vertex-api.md §2).
import { randomBytes } from 'node:crypto';

/** tunedModelId as the API accepts it: 1–40 chars, a letter first, no trailing hyphen. */
export const tunedModelIdPattern = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;
const maxIdLength = 40;
const suffixLength = 12;

export function randomId(length = suffixLength): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(length), (b) => alphabet[b % alphabet.length]).join('');
}

/**
 * "number generator model" → number-generator-model-dzlmi0gswwqb: lowercase, split on whitespace,
 * drop every character outside [a-z0-9] within words, join with hyphens, append a random suffix.
 */
export function tunedModelIdFor(displayName: string | undefined): string {
  const words = (displayName ?? '')
    .toLowerCase()
    .split(/\s+/)
    .map((w) => w.replace(/[^a-z0-9]/g, ''))
    .filter(Boolean);
  let slug = words.join('-').replace(/^[^a-z]+/, '');
  slug = slug.slice(0, maxIdLength - suffixLength - 1).replace(/-+$/, '');
  const suffix = randomId();
  return slug ? `${slug}-${suffix}` : `${randomId(1).replace(/[0-9]/, 'a')}${randomId(10)}`;
}

/** Operation ids: 12 characters of [a-z0-9], as observed. */
export const operationId = (): string => randomId(12);

/** Vertex resource ids: 19 digits, no leading zero, as tuningJobs/2125697426391040000. */
export function jobNumber(): string {
  const digits = Array.from(randomBytes(19), (b) => String(b % 10));
  digits[0] = String(1 + (randomBytes(1)[0]! % 9));
  return digits.join('');
}
