// A real `attune serve` in a child process for HTTP tests: a temp data dir, a free port, API keys issued
// through `attune keys create` (the same SQLite file the server uses), and a SIGTERM stop in `after`.
// Also a small fetch wrapper that returns status, headers, text and parsed JSON.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'bin', 'attune.js'))) return dir;
  }
  throw new Error('cannot find the repository root (package.json with bin/attune.js)');
}

export const repoRoot = findRepoRoot();
export const cliPath = path.join(repoRoot, 'bin', 'attune.js');

/** A port nothing listens on right now (the OS picks it; there is a small window before the server binds it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/attune.js …` to completion (killed after timeoutMs). */
export function runCli(args: string[], { env, timeoutMs = 60_000 }: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Issues an API key for `project` with `attune keys create`; works before the server starts or while it runs. */
export async function createKey(dataDir: string, project: string, label?: string): Promise<string> {
  const args = ['keys', 'create', '--project', project, '--data-dir', dataDir, ...(label ? ['--label', label] : [])];
  const result = await runCli(args);
  const key = result.stdout.trim();
  if (result.code !== 0 || !key || /\s/.test(key)) {
    throw new Error(`attune keys create --project ${project} failed (exit ${result.code}): ${result.stderr || result.stdout}`);
  }
  return key;
}

export interface ServerOptions {
  /** Default: a fresh temp dir, removed when the server stops. */
  dataDir?: string;
  host?: string;
  keyless?: boolean;
  concurrency?: number;
  /** Serve gRPC too, on a free port (default: --grpc-port 0, so that test servers never contend for 8081). */
  grpc?: boolean;
  /** More `serve` flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long to wait for /healthz (default 60 s). */
  startTimeoutMs?: number;
  /** ATTUNE_LOG_LEVEL for the child (default 'warn': unexpected errors are kept, request lines are not). */
  logLevel?: string;
}

const maxKeptOutput = 256 * 1024;

export class AttuneServer {
  private output = '';
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit?: { code: number | null; signal: NodeJS.Signals | null };

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly port: number,
    readonly dataDir: string,
    private readonly ownsDataDir: boolean,
    /** The gRPC port, when the server was started with `grpc: true`. */
    readonly grpcPort?: number,
  ) {
    const keep = (d: string) => {
      this.output = (this.output + d).slice(-maxKeptOutput);
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  /** Starts `attune serve` on a free port and waits until /healthz answers. */
  static async start(options: ServerOptions = {}): Promise<AttuneServer> {
    const ownsDataDir = options.dataDir === undefined;
    const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'attune-serve-'));
    const host = options.host ?? '127.0.0.1';
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort(host);
      const grpcPort = options.grpc ? await freePort(host) : undefined;
      const args = [cliPath, 'serve', '--data-dir', dataDir, '--host', host, '--port', String(port), '--grpc-port', String(grpcPort ?? 0)];
      if (options.keyless) args.push('--keyless');
      if (options.concurrency !== undefined) args.push('--concurrency', String(options.concurrency));
      args.push(...(options.args ?? []));
      const child = spawn(process.execPath, args, {
        cwd: repoRoot,
        env: { ...process.env, ATTUNE_LOG_LEVEL: options.logLevel ?? 'warn', ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const urlHost = host.includes(':') ? `[${host}]` : host;
      const server = new AttuneServer(child, `http://${urlHost}:${port}`, port, dataDir, ownsDataDir, grpcPort);
      try {
        await server.waitHealthy(options.startTimeoutMs ?? 60_000);
        return server;
      } catch (error) {
        lastError = error;
        await server.stop({ keepDataDir: true });
        // Another process may have taken the port between the probe and the bind: try another one.
        if (!/EADDRINUSE|cannot listen/.test(server.logs())) break;
      }
    }
    if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
    throw lastError;
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exit) throw new Error(`attune serve exited (${this.exit.code ?? this.exit.signal}) before answering /healthz:\n${this.logs()}`);
      try {
        const response = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(2_000) });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`attune serve did not answer /healthz within ${timeoutMs} ms:\n${this.logs()}`);
  }

  /** The child's stdout and stderr so far (the last 256 KiB). */
  logs(): string {
    return this.output;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  createKey(project: string, label?: string): Promise<string> {
    return createKey(this.dataDir, project, label);
  }

  /** SIGTERM, then waits (SIGKILL after graceMs); returns how the process ended. */
  async stop({ graceMs = 30_000, keepDataDir = false }: { graceMs?: number; keepDataDir?: boolean } = {}) {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.ownsDataDir && !keepDataDir) rmSync(this.dataDir, { recursive: true, force: true });
    return (await this.exited);
  }
}

export interface ServerFixture {
  readonly server: AttuneServer;
  readonly url: string;
  /** The key issued for each project named in `projects`. */
  readonly keys: Record<string, string>;
}

/**
 * Registers `before` (start a server, issue one key per project) and `after` (stop it) on the enclosing
 * suite. The fixture's fields are usable from the tests on.
 */
export function useServer(options: ServerOptions & { projects?: string[] } = {}): ServerFixture {
  let server: AttuneServer | undefined;
  let ownDataDir: string | undefined;
  const keys: Record<string, string> = {};
  before(async () => {
    if (options.dataDir === undefined) ownDataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-serve-'));
    const dataDir = options.dataDir ?? ownDataDir!;
    // Keys first: the server and `keys create` share the SQLite file, so either order works.
    for (const project of options.projects ?? []) keys[project] = await createKey(dataDir, project);
    server = await AttuneServer.start({ ...options, dataDir });
  });
  after(async () => {
    if (server) await server.stop();
    if (ownDataDir) rmSync(ownDataDir, { recursive: true, force: true });
  });
  return {
    get server() {
      if (!server) throw new Error('the server is not started yet (use the fixture inside tests)');
      return server;
    },
    get url() {
      return this.server.url;
    },
    keys,
  };
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  json: any;
}

export interface CallOptions {
  method?: string;
  /** Sent as x-goog-api-key. */
  key?: string;
  /** A JS value is sent as JSON; a string or Buffer is sent as is. */
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/** One HTTP request; never throws for HTTP error statuses. */
export async function call(url: string, { method = 'GET', key, body, headers = {}, timeoutMs = 60_000 }: CallOptions = {}): Promise<ApiResponse> {
  const sent: Record<string, string> = { ...headers };
  if (key !== undefined) sent['x-goog-api-key'] = key;
  let payload: string | Buffer | undefined;
  if (body !== undefined) {
    payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    if (!Object.keys(sent).some((h) => h.toLowerCase() === 'content-type')) sent['content-type'] = 'application/json';
  }
  const response = await fetch(url, { method, headers: sent, body: payload, signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value other than undefined; throws after timeoutMs. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, { timeoutMs = 120_000, intervalMs = 250 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(intervalMs);
  }
}
