// attune serve: the Gemini and Vertex tuning surfaces, until SIGINT/SIGTERM. On one machine it trains with
// its own local workers; with a shared --database and --storage, any number of servers and `attune worker`s
// share the work (--concurrency 0: an API server only).
import { statSync } from 'node:fs';
import path from 'node:path';
import { openServices } from '../service/services.js';
import { buildServer } from '../api/server.js';
import { startGrpcServer } from '../api/grpc/server.js';
import { isLoopback, serviceDefaults, type ServiceConfig } from '../service/config.js';
import { describeTarget, databaseTarget } from '../service/store/database.js';
import { parseOptions } from './args.js';
import { UsageError, numberOption } from './usage-error.js';
import { limitNames, limitOverrides } from '../service/limits.js';
import { stateConfig, stateOptions, stateUsage, workerConfig, workerOptions, workerUsage } from './deployment.js';
import { schedulers, type SchedulerKind } from '../service/serving/inference.js';
import { printJobEvents } from './job-events.js';

export const serveUsage = `attune serve [options]
  --host H            (default ${serviceDefaults.host}; ATTUNE_HOST)
  --port N            (default ${serviceDefaults.port}; ATTUNE_PORT)
  --grpc-port N       Google's gRPC services, plaintext HTTP/2 (default ${serviceDefaults.grpcPort}; 0: off; ATTUNE_GRPC_PORT)
${stateUsage}
${workerUsage(`default ${serviceDefaults.concurrency}; 0 runs no local worker: an API server only`)}
  --keyless           accept requests without an API key (loopback only)
  --dataset-dir DIR   let Vertex dataset URIs name local files, confined to DIR (default: only gs:// objects)
  --scheduler S       generation scheduler: continuous (default; batches every request of a base model
                      together) or swap-per-batch (the earlier one, for comparison)
  --limit NAME=VALUE  override a size cap or quota (repeatable; ATTUNE_LIMIT_<NAME>): ${limitNames.join(', ')}`;

const isPort = (n: number) => Number.isInteger(n) && n >= 0 && n < 65536;

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseOptions(argv, {
    host: { type: 'string' }, port: { type: 'string' }, 'grpc-port': { type: 'string' }, ...stateOptions, ...workerOptions,
    keyless: { type: 'boolean' }, 'dataset-dir': { type: 'string' }, limit: { type: 'string', multiple: true },
    scheduler: { type: 'string' },
  });
  const config: ServiceConfig = {
    host: values.host ?? process.env.ATTUNE_HOST ?? serviceDefaults.host,
    port: numberOption('port', values.port ?? process.env.ATTUNE_PORT, isPort, 'a port number') ?? serviceDefaults.port,
    ...stateConfig(values),
    ...workerConfig(values, serviceDefaults.concurrency),
    keyless: values.keyless ?? false,
    datasetDir: values['dataset-dir'] ? path.resolve(values['dataset-dir']) : undefined,
    limits: usage(() => limitOverrides(values.limit ?? [])),
    serving: { scheduler: schedulerOption(values.scheduler) },
  };
  const grpcPort =
    numberOption('grpc-port', values['grpc-port'] ?? process.env.ATTUNE_GRPC_PORT, isPort, 'a port number (0: no gRPC)') ?? serviceDefaults.grpcPort;
  if (config.datasetDir && !statSync(config.datasetDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new UsageError(`--dataset-dir ${config.datasetDir} is not a directory`);
  }
  if (config.keyless && !isLoopback(config.host)) {
    throw new UsageError(`--keyless is refused when listening on ${config.host}: it is for loopback (127.0.0.1, ::1) only`);
  }
  const target = usage(() => databaseTarget(config.database, config.dataDir));
  const services = await openServices(config);
  const app = await buildServer(services, { logLevel: process.env.ATTUNE_LOG_LEVEL ?? 'info' });
  const address = await app.listen({ host: config.host, port: config.port });
  const grpc = grpcPort
    ? await startGrpcServer(services, {
        host: config.host,
        port: grpcPort,
        log: app.log,
      }).catch(async (error: Error) => {
        await app.close();
        await services.close();
        throw new Error(`gRPC cannot listen on port ${grpcPort} (${error.message}); --grpc-port N picks another, --grpc-port 0 turns gRPC off`);
      })
    : undefined;
  const grpcAddress = grpc && `${config.host.includes(':') ? `[${config.host}]` : config.host}:${grpc.port}`;
  app.log.info(
    { address, grpc: grpcAddress, dataDir: config.dataDir, database: describeTarget(target), storage: services.artifacts.description, localWorkers: config.concurrency, keyless: config.keyless },
    'attune is serving',
  );
  process.stderr.write(
    `attune is serving ${address}${grpcAddress ? ` and gRPC on ${grpcAddress}` : ''}${config.keyless ? ' (keyless)' : ''}; the web console is at ${address}/console/\n`,
  );
  const { device, dtype, reason } = services.placement;
  app.log.info({ device, dtype, reason }, 'placement');
  process.stderr.write(`tuning and serving on ${device} in ${dtype}: ${reason}\n`);
  const stopPrinting = printJobEvents(services.tuning);
  await new Promise<void>((resolve) => {
    const shutdown = async (signal: string) => {
      app.log.info({ signal }, 'shutting down: no new requests, checkpointing running jobs');
      await Promise.all([app.close(), grpc?.close()]);
      stopPrinting();
      await services.close();
      resolve();
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
  });
}

function schedulerOption(value: string | undefined): SchedulerKind | undefined {
  if (value === undefined) return undefined;
  if (!(schedulers as readonly string[]).includes(value)) throw new UsageError(`--scheduler must be one of ${schedulers.join(', ')}, not '${value}'`);
  return value as SchedulerKind;
}

/** A plain Error from option parsing becomes a usage error (printed with the command's usage). */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
