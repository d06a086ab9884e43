// Google's own proto descriptors, exactly as its Node client packages ship them (the protobufjs JSON their gRPC
// stubs load): Vertex AI's from @google-cloud/aiplatform, the Gemini API's from @google-ai/generativelanguage,
// and google.rpc's error details from google-gax (which those clients decode errors with). Nothing is copied.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);

function rootOf(packageName: string, ...file: string[]): protobuf.Root {
  // The packages' `main` is build/src/index.js; their descriptors sit in build/protos.
  const buildDir = path.resolve(path.dirname(require.resolve(packageName)), '..', '..', 'build');
  return protobuf.Root.fromJSON(JSON.parse(readFileSync(path.join(buildDir, ...file), 'utf8')));
}

export interface Descriptors {
  vertex: protobuf.Root;
  gemini: protobuf.Root;
  /** google.rpc.Status and the error details (BadRequest). */
  status: protobuf.Root;
}

/** Parsed once, when the gRPC server starts (the Vertex file is 4 MB). */
export function loadDescriptors(): Descriptors {
  return {
    vertex: rootOf('@google-cloud/aiplatform', 'protos', 'protos.json'),
    gemini: rootOf('@google-ai/generativelanguage', 'protos', 'protos.json'),
    status: rootOf('google-gax', 'protos', 'status.json'),
  };
}
