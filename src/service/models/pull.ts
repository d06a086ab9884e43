// Downloads a Hugging Face model repository into <dataDir>/models/<name>, where the registry finds it.
// Only the files a base model needs are fetched; HF_TOKEN is sent for gated repositories.
import { createWriteStream, mkdirSync, renameSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const wanted = /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|chat_template\.(jinja|json)|model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json|LICENSE.*|README\.md)$/;

export interface PullOptions {
  dataDir: string;
  endpoint?: string;
  token?: string;
  onFile?: (file: string, bytes: number) => void;
}

/** Returns the local directory. The download lands in a temporary folder first, so a failure leaves nothing half-written. */
export async function pullModel(repo: string, { dataDir, endpoint = 'https://huggingface.co', token, onFile }: PullOptions): Promise<string> {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new Error(`'${repo}' is not a Hugging Face repository id like owner/name`);
  const target = path.join(dataDir, 'models', repo.replace('/', '--'));
  if (existsSync(target)) throw new Error(`${target} already exists; remove it to pull again`);
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const get = async (url: string) => {
    let response: Response;
    try {
      response = await fetch(url, { headers });
    } catch (error) {
      throw new Error(`cannot reach ${endpoint} (${(error as Error).cause ?? (error as Error).message}); attune pull needs internet access`);
    }
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}${response.status === 401 ? ' (a gated model: set HF_TOKEN)' : ''}`);
    return response;
  };
  const info = (await (await get(`${endpoint}/api/models/${repo}`)).json()) as { siblings?: { rfilename: string }[] };
  const files = (info.siblings ?? []).map((s) => s.rfilename).filter((f) => wanted.test(f));
  if (!files.includes('config.json') || !files.some((f) => f.endsWith('.safetensors'))) {
    throw new Error(`${repo} has no config.json with safetensors weights: Attune loads Hugging Face safetensors models`);
  }
  const partial = `${target}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  try {
    for (const file of files) {
      const response = await get(`${endpoint}/${repo}/resolve/main/${file}`);
      await pipeline(Readable.fromWeb(response.body as never), createWriteStream(path.join(partial, file)));
      onFile?.(file, Number(response.headers.get('content-length') ?? 0));
    }
    renameSync(partial, target);
  } catch (error) {
    rmSync(partial, { recursive: true, force: true });
    throw error;
  }
  return target;
}
