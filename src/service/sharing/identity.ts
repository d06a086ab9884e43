// Who a project is to Google's sharing surface. Attune has no users or groups: a project (the unit every API key
// belongs to) is the one principal, so it gets what a Google principal has: an email address, which USER and GROUP
// grantees and transferOwnership carry, and a 12-digit project number, which readerProjectNumbers carries. Both
// follow from the project id alone, so they are stable forever and need no storage.
import { createHash } from 'node:crypto';

/** The domain of every project's identity email (`.internal` is reserved for private use, so it names no real mailbox). */
export const identityDomain = 'projects.attune.internal';

export const projectEmail = (project: string) => `${project}@${identityDomain}`;

/** 12 digits, the first not 0, as Google's project numbers are; from the SHA-256 of the project id. */
export function projectNumber(project: string): string {
  const digest = BigInt(`0x${createHash('sha256').update(project).digest('hex').slice(0, 15)}`);
  return String(100_000_000_000n + (digest % 900_000_000_000n));
}

/** The project an identity email names (any letter case), or undefined when it is not one of Attune's. */
export function projectOfEmail(email: string): string | undefined {
  const at = email.lastIndexOf('@');
  if (at <= 0 || email.slice(at + 1).toLowerCase() !== identityDomain) return undefined;
  return email.slice(0, at).toLowerCase();
}

export interface ProjectIdentity {
  projectId: string;
  email: string;
  projectNumber: string;
}

export const identityOf = (project: string): ProjectIdentity => ({ projectId: project, email: projectEmail(project), projectNumber: projectNumber(project) });
