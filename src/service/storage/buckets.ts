// Bucket names, and the bucket the web console keeps a project's uploads in. Pure (no Node modules): the
// console's bundle imports it too, so the browser and the server agree on the name.

/** Cloud Storage's rule: 3–63 lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit. */
export const bucketNamePattern = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

export const isBucketName = (name: string): boolean => bucketNamePattern.test(name) && !name.includes('..');

/** Bucket names with this prefix are reserved: only the project consoleBucketFor() names may create one. */
export const consoleBucketPrefix = 'attune-console-';

/**
 * The console's bucket for a project: `attune-console-<project>` when that is a valid bucket name (every
 * project id Attune issues keys for), else a readable slug plus a hash of the exact project name.
 */
export function consoleBucketFor(project: string): string {
  const plain = consoleBucketPrefix + project;
  if (isBucketName(plain)) return plain;
  const slug = project.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 30);
  return `${consoleBucketPrefix}${slug ? `${slug}-` : ''}${fnv1a(project)}`;
}

/** 32-bit FNV-1a of the UTF-16 code units, as 8 hex digits: short, stable, the same in every JS runtime. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, '0');
}
