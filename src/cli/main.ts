// attune: the command line. Each subcommand lives in its own file; errors print as plain messages.
import { tuneCommand, tuneUsage } from './tune.js';
import { generateCommand, generateUsage } from './generate.js';
import { serveCommand, serveUsage } from './serve.js';
import { keysCommand, keysUsage } from './keys.js';
import { pullCommand, pullUsage } from './pull.js';
import { datasetsCommand, datasetsUsage } from './datasets.js';
import { workerCommand, workerCommandUsage } from './worker.js';
import { exportCommand, exportUsage } from './export.js';
import { UsageError } from './usage-error.js';
import { suggestion } from './args.js';
import { configureThreads } from '../engine/runtime.js';
import { packageVersion } from '../engine/package-root.js';

const commands: Record<string, { run: (argv: string[]) => Promise<void>; usage: string }> = {
  tune: { run: tuneCommand, usage: tuneUsage },
  generate: { run: generateCommand, usage: generateUsage },
  serve: { run: serveCommand, usage: serveUsage },
  worker: { run: workerCommand, usage: workerCommandUsage },
  keys: { run: keysCommand, usage: keysUsage },
  pull: { run: pullCommand, usage: pullUsage },
  datasets: { run: datasetsCommand, usage: datasetsUsage },
  export: { run: exportCommand, usage: exportUsage },
};

const overview = `usage: attune <command> [options]\n\ncommands:\n${Object.values(commands).map((c) => '  ' + c.usage.split('\n')[0]).join('\n')}\n\nattune <command> --help shows a command's options; attune --version prints the version. ATTUNE_THREADS and ATTUNE_BLAS_THREADS set libtorch's and OpenBLAS's threads.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    console.log(`attune ${packageVersion}`);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    const near = suggestion(name.replace(/^-+/, ''), Object.keys(commands));
    console.error(`attune: unknown command '${name}'${near ? `; did you mean '${near}'?` : ''}\n\n${overview}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    configureThreads();
    await command.run(rest);
    return 0;
  } catch (error) {
    const message = (error as Error).message ?? String(error);
    const code = (error as { code?: string }).code;
    // parseArgs reports unknown or malformed flags with these codes.
    const usage = error instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
    console.error(`attune ${name}: ${message}${usage ? `\n\n${command.usage}` : ''}`);
    return usage ? 2 : 1;
  }
}
