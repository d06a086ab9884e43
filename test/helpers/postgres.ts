// A throwaway PostgreSQL cluster for tests: Debian's postgresql (scripts/setup.sh installs it), initdb in a
// temp dir, the server on a free loopback port with fsync off, and removal afterwards. PostgreSQL refuses to
// run as root, so as root (CI containers) the cluster belongs to the `postgres` system user the package
// creates, and its programs run through setpriv. Each test takes a fresh database of the cluster.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import pg from 'pg';
import { freePort, sleep } from './server.js';

/** The newest /usr/lib/postgresql/<version>/bin, or $PG_BIN. */
function postgresBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error('no PostgreSQL server found under /usr/lib/postgresql: run scripts/setup.sh (installs Debian\'s postgresql) or set PG_BIN');
  return path.join(root, versions[0], 'bin');
}

/** Who runs the cluster: this user, or the `postgres` system user when the tests run as root. */
function clusterUser(): { uid: number; gid: number; name: string } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid, name: 'postgres' };
}

export class PostgresCluster {
  private server?: ChildProcess;
  private exited?: Promise<void>;
  private output = '';
  private databases = 0;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
    private readonly user: ReturnType<typeof clusterUser>,
  ) {}

  static async create(): Promise<PostgresCluster> {
    const bin = postgresBin();
    const user = clusterUser();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'attune-pg-'));
    if (user) chownSync(dir, user.uid, user.gid);
    const cluster = new PostgresCluster(dir, await freePort(), bin, user);
    try {
      cluster.run('initdb', ['-D', cluster.dataDir, '-U', 'attune', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
      await cluster.start();
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  /** The URL of a database of this cluster. */
  url(database = 'postgres'): string {
    return `postgres://attune@127.0.0.1:${this.port}/${database}`;
  }

  private command(program: string, args: string[]): [string, string[]] {
    const full = path.join(this.bin, program);
    return this.user
      ? ['setpriv', [`--reuid=${this.user.uid}`, `--regid=${this.user.gid}`, '--init-groups', full, ...args]]
      : [full, args];
  }

  private run(program: string, args: string[]): void {
    const [file, argv] = this.command(program, args);
    execFileSync(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
  }

  /** Starts the server (again, after stop(): same port, same data) and waits until it takes connections. */
  async start(): Promise<void> {
    const [file, argv] = this.command('postgres', [
      '-D', this.dataDir, '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300',
    ]);
    // setpriv execs postgres itself, so this pid is the postmaster's and signals reach it.
    const server = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
    this.server = server;
    server.stdout!.setEncoding('utf8').on('data', (d: string) => (this.output = (this.output + d).slice(-20_000)));
    server.stderr!.setEncoding('utf8').on('data', (d: string) => (this.output = (this.output + d).slice(-20_000)));
    this.exited = new Promise((resolve) => server.once('exit', () => resolve()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`postgres exited with ${server.exitCode}:\n${this.output}`);
      const client = new pg.Client({ connectionString: this.url(), connectionTimeoutMillis: 1_000 });
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => {});
      }
      if (Date.now() > deadline) throw new Error(`postgres did not start:\n${this.output}`);
      await sleep(100);
    }
  }

  /** Fast shutdown: connections are dropped, as when a database server goes away. */
  async stop(): Promise<void> {
    if (!this.server || this.server.exitCode !== null) return;
    this.server.kill('SIGINT');
    await this.exited;
  }

  /** A fresh, empty database; returns its URL. */
  async createDatabase(prefix = 'test'): Promise<string> {
    const name = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${++this.databases}`;
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  logs(): string {
    return this.output;
  }

  /** At process exit, when nothing async runs any more: kill the server and remove its files. */
  destroySync(): void {
    if (this.server && this.server.exitCode === null) this.server.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  async destroy(): Promise<void> {
    if (this.server && this.server.exitCode === null) {
      this.server.kill('SIGQUIT');
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Registers `before` (create the cluster) and `after` (remove it) on the enclosing suite. */
export function usePostgres(): { readonly cluster: PostgresCluster } {
  let cluster: PostgresCluster | undefined;
  // A crashed test run must not leave a postmaster behind.
  const kill = () => cluster?.destroySync();
  before(async () => {
    cluster = await PostgresCluster.create();
    process.once('exit', kill);
  });
  after(async () => {
    process.off('exit', kill);
    await cluster?.destroy();
  });
  return {
    get cluster() {
      if (!cluster) throw new Error('the PostgreSQL cluster is not started yet (use it inside tests)');
      return cluster;
    },
  };
}
