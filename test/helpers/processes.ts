// An `attune` command running in the background (a worker, say): its output kept, stopped or killed at will.
import { spawn, type ChildProcess } from 'node:child_process';
import { cliPath, repoRoot, sleep } from './server.js';

export class AttuneProcess {
  private output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit?: { code: number | null; signal: NodeJS.Signals | null };

  private constructor(readonly child: ChildProcess) {
    const keep = (d: string) => (this.output = (this.output + d).slice(-512 * 1024));
    child.stdout!.setEncoding('utf8').on('data', keep);
    child.stderr!.setEncoding('utf8').on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
  }

  static spawn(args: string[], env: NodeJS.ProcessEnv = {}): AttuneProcess {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: repoRoot,
      env: { ...process.env, ATTUNE_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new AttuneProcess(child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  logs(): string {
    return this.output;
  }

  /** Waits until the output matches (or the process exits, or time runs out). */
  async waitForOutput(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (!this.running) throw new Error(`the process exited (${this.exit?.code ?? this.exit?.signal}) before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${this.output}`);
      await sleep(50);
    }
  }

  /** A signal, then the exit (SIGKILL after graceMs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000) {
    if (this.running) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }
}
