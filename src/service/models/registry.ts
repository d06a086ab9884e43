// Base models: the embedded stories260K, Hugging Face directories under <dataDir>/models, and an alias
// table that maps the names Google's samples and SDKs use (models/gemini-1.0-pro-001, …) to them.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { embeddedBaseModelDir } from '../../engine/base-model.js';
import { readModelConfig } from '../../engine/model/load.js';
import { notFound } from '../errors.js';
import { tuningDefaults } from '../tuning/defaults.js';
import { adapterSizeRanks } from '../../engine/lora/lora.js';

export interface SamplingDefaults {
  temperature: number;
  topP: number;
  topK: number;
}

export interface BaseModelInfo {
  /** models/<id> */
  name: string;
  dir: string;
  displayName: string;
  description: string;
  inputTokenLimit: number;
  /** Rows of the model's embedding table: token ids from here on cannot be fed to it. */
  vocabSize: number;
  outputTokenLimit: number;
  /** Defaults a tuned model of this base starts with. */
  sampling: SamplingDefaults;
  /** LoRA ranks (Vertex adapter sizes) a tuning of this base may use, and the one it gets by default. */
  adapterRanks: readonly number[];
  defaultAdapterRank: number;
  /** For an alias: the local model it stands for. */
  aliasOf?: string;
}

export const supportedGenerationMethods = ['generateContent', 'countTokens', 'createTunedModel', 'generateText'];

/** Every LoRA rank Attune tunes with (the Vertex adapter sizes). */
const allAdapterRanks: readonly number[] = Object.values(adapterSizeRanks);

interface GoogleModel {
  sampling: SamplingDefaults;
  /** Vertex's adapter sizes for the model, where Google documents them (vertex-api.md §5.3); else all. */
  adapterRanks?: readonly number[];
  defaultAdapterRank?: number;
}

/**
 * Google's tunable (and commonly tuned-against) model names, with the sampling defaults their tuned models
 * had upstream (gemini-api.md §6) and Vertex's adapter sizes. All point at the embedded model unless
 * aliases.json says otherwise. Google documents default adapter sizes only for 1.0 Pro (1, the tuning API
 * reference), 1.5 Pro (4) and 1.5 Flash (8); Attune takes 4 for the other models whose sizes stop at 8, and 8
 * where 16 is allowed.
 */
const googleModels: Record<string, GoogleModel> = {
  'text-bison-001': { sampling: { temperature: 0.7, topP: 0.95, topK: 40 } },
  'gemini-1.0-pro-001': { sampling: { temperature: 0.9, topP: 1, topK: 1 } },
  'gemini-1.0-pro-002': { sampling: { temperature: 0.9, topP: 1, topK: 1 }, adapterRanks: [1, 4, 8, 16], defaultAdapterRank: 1 },
  'gemini-1.5-flash-001-tuning': { sampling: { temperature: 1, topP: 0.95, topK: 64 } },
  'gemini-1.5-flash-001': { sampling: { temperature: 1, topP: 0.95, topK: 64 } },
  'gemini-1.5-flash-002': { sampling: { temperature: 1, topP: 0.95, topK: 64 }, adapterRanks: [1, 4, 8, 16], defaultAdapterRank: 8 },
  'gemini-1.5-pro-002': { sampling: { temperature: 1, topP: 0.95, topK: 40 }, adapterRanks: [1, 4], defaultAdapterRank: 4 },
  'gemini-2.0-flash-001': { sampling: { temperature: 1, topP: 0.95, topK: 40 }, adapterRanks: [1, 2, 4, 8], defaultAdapterRank: 4 },
  'gemini-2.0-flash-lite-001': { sampling: { temperature: 1, topP: 0.95, topK: 40 }, adapterRanks: [1, 2, 4, 8], defaultAdapterRank: 4 },
  'gemini-2.5-flash': { sampling: { temperature: 1, topP: 0.95, topK: 64 }, adapterRanks: [1, 2, 4, 8, 16], defaultAdapterRank: 8 },
  'gemini-2.5-flash-lite': { sampling: { temperature: 1, topP: 0.95, topK: 64 }, adapterRanks: [1, 2, 4, 8, 16], defaultAdapterRank: 8 },
  'gemini-2.5-pro': { sampling: { temperature: 1, topP: 0.95, topK: 64 }, adapterRanks: [1, 2, 4, 8], defaultAdapterRank: 4 },
};

export const aliasesFile = 'aliases.json';

/** How stale the list of base models may be: a model copied into <data dir>/models appears within this. */
const rescanMs = 2_000;

export class BaseModelRegistry {
  private models = new Map<string, BaseModelInfo>();
  private scannedAt = 0;
  /** Folders under models/ that are not a model Attune runs, with why (reported once each). */
  private readonly skipped = new Map<string, string>();

  /** Reads the embedded model, <dataDir>/models/* and <dataDir>/aliases.json ({"models/x": "local-id"}). */
  constructor(readonly dataDir: string) {
    this.scan();
  }

  /**
   * Models copied into <dataDir>/models (or aliases edited) appear without a restart: the folder is read
   * again when it was last read more than rescanMs ago.
   */
  private fresh(): void {
    if (Date.now() - this.scannedAt > rescanMs) this.scan();
  }

  private scan(): void {
    this.scannedAt = Date.now();
    this.models = new Map();
    this.addLocal(embeddedBaseModelDir);
    const modelsDir = path.join(this.dataDir, 'models');
    if (existsSync(modelsDir)) {
      for (const entry of readdirSync(modelsDir)) {
        const dir = path.join(modelsDir, entry);
        if (!statSync(dir).isDirectory() || !existsSync(path.join(dir, 'config.json'))) continue;
        try {
          this.addLocal(dir);
          this.skipped.delete(dir);
        } catch (error) {
          const why = (error as Error).message;
          if (this.skipped.get(dir) !== why) console.warn(`attune: skipping base model folder ${dir}: ${why}`);
          this.skipped.set(dir, why);
        }
      }
    }
    const embeddedId = path.basename(embeddedBaseModelDir);
    const aliases: Record<string, string> = Object.fromEntries(Object.keys(googleModels).map((m) => [m, embeddedId]));
    const file = path.join(this.dataDir, aliasesFile);
    if (existsSync(file)) {
      for (const [alias, target] of Object.entries(JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>)) {
        aliases[bareId(alias)] = bareId(target);
      }
    }
    for (const [alias, target] of Object.entries(aliases)) {
      const local = this.models.get(target);
      if (!local || this.models.has(alias)) continue;
      this.models.set(alias, {
        ...local,
        name: `models/${alias}`,
        displayName: `${alias} (Attune: ${local.displayName})`,
        description: `Runs locally as ${local.name}.`,
        sampling: googleModels[alias]?.sampling ?? local.sampling,
        adapterRanks: googleModels[alias]?.adapterRanks ?? local.adapterRanks,
        defaultAdapterRank: googleModels[alias]?.defaultAdapterRank ?? local.defaultAdapterRank,
        aliasOf: local.name,
      });
    }
  }

  list(): BaseModelInfo[] {
    this.fresh();
    return [...this.models.values()];
  }

  /** Accepts `models/x` or a bare `x`, as @google/genai sends base model names verbatim. */
  resolve(name: string, apiVersion = 'v1beta', method = 'generateContent'): BaseModelInfo {
    this.fresh();
    const found = this.models.get(bareId(name));
    if (!found) {
      throw notFound(
        `${name.startsWith('models/') ? name : `models/${name}`} is not found for API version ${apiVersion}, or is not supported for ${method}. Call ListModels to see the list of available models and their supported methods.`,
      );
    }
    return found;
  }

  private addLocal(dir: string): void {
    const id = path.basename(dir);
    this.models.set(id, this.inspect(dir, `models/${id}`));
  }

  /** A model folder outside the registry (Vertex customBaseModel), described as a base model named `name`; throws when Attune cannot run it. */
  inspect(dir: string, name: string): BaseModelInfo {
    const config = readModelConfig(dir);
    const id = path.basename(dir);
    const generation = readJson(path.join(dir, 'generation_config.json'));
    return {
      name,
      dir,
      displayName: id,
      description: `${config.architecture} base model ${id}, on this server.`,
      inputTokenLimit: config.maxPositions,
      vocabSize: config.vocabSize,
      outputTokenLimit: config.maxPositions,
      sampling: {
        temperature: generation.temperature ?? 1,
        topP: generation.top_p ?? 0.95,
        topK: generation.top_k ?? 40,
      },
      adapterRanks: allAdapterRanks,
      defaultAdapterRank: tuningDefaults.adapterRank,
    };
  }
}

const bareId = (name: string): string => name.replace(/^models\//, '');

function readJson(file: string): Record<string, any> {
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
}
