// attune serve: the Gemini API tuning surface on this machine, until SIGINT/SIGTERM.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openServices } from '../service/services.js';
import { buildServer } from '../api/server.js';
import { isLoopback, serviceDefaults, type ServiceConfig } from '../service/config.js';
import { UsageError, numberOption, positiveInteger } from './usage-error.js';
import { limitNames, limitOverrides } from '../service/limits.js';

export const serveUsage = `attune serve [options]
  --host H            (default ${serviceDefaults.host}; ATTUNE_HOST)
  --port N            (default ${serviceDefaults.port}; ATTUNE_PORT)
  --data-dir DIR      SQLite file, adapters, base models (default ${serviceDefaults.dataDir}; ATTUNE_DATA_DIR)
  --database DB       postgres://USER@HOST:PORT/NAME, or a SQLite file (default: attune.sqlite in the data dir; ATTUNE_DATABASE)
  --concurrency N     tuning jobs trained at once (default ${serviceDefaults.concurrency})
  --keyless           accept requests without an API key (loopback only)
  --dataset-dir DIR   let Vertex dataset URIs name local files, confined to DIR (default: only gs:// objects)
  --limit NAME=VALUE  override a size cap or quota (repeatable; ATTUNE_LIMIT_<NAME>): ${limitNames.join(', ')}`;

export function dataDirOption(value: string | undefined): string {
  return value ?? process.env.ATTUNE_DATA_DIR ?? serviceDefaults.dataDir;
}

export function databaseOption(value: string | undefined): string | undefined {
  return value ?? (process.env.ATTUNE_DATABASE || undefined);
}

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' }, port: { type: 'string' }, 'data-dir': { type: 'string' }, database: { type: 'string' },
      concurrency: { type: 'string' }, keyless: { type: 'boolean' }, 'dataset-dir': { type: 'string' },
      limit: { type: 'string', multiple: true },
    },
  });
  const config: ServiceConfig = {
    host: values.host ?? process.env.ATTUNE_HOST ?? serviceDefaults.host,
    port: numberOption('port', values.port ?? process.env.ATTUNE_PORT, (n) => Number.isInteger(n) && n >= 0 && n < 65536, 'a port number') ?? serviceDefaults.port,
    dataDir: dataDirOption(values['data-dir']),
    database: databaseOption(values.database),
    concurrency: numberOption('concurrency', values.concurrency, positiveInteger, 'a positive integer') ?? serviceDefaults.concurrency,
    keyless: values.keyless ?? false,
    datasetDir: values['dataset-dir'] ? path.resolve(values['dataset-dir']) : undefined,
    limits: usage(() => limitOverrides(values.limit ?? [])),
  };
  if (config.keyless && !isLoopback(config.host)) {
    throw new UsageError(`--keyless is refused when listening on ${config.host}: it is for loopback (127.0.0.1, ::1) only`);
  }
  const services = await openServices(config);
  const app = await buildServer(services, { logger: { level: process.env.ATTUNE_LOG_LEVEL ?? 'info' } });
  const address = await app.listen({ host: config.host, port: config.port });
  app.log.info({ address, dataDir: config.dataDir, keyless: config.keyless }, 'attune is serving');
  await new Promise<void>((resolve) => {
    const shutdown = async (signal: string) => {
      app.log.info({ signal }, 'shutting down: no new requests, checkpointing running jobs');
      await app.close();
      await services.close();
      resolve();
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
  });
}

/** A plain Error from option parsing becomes a usage error (printed with the command's usage). */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
