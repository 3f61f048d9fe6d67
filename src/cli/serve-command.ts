/**
 * `ferry serve`: runs the service (API, scheduler, supervisor) in this process until a signal stops
 * it. The only command that does not wrap the HTTP API.
 */
import { Option, type Command } from 'commander';
import { compileConfig, type RawOptions } from '../config.ts';
import { installSignalHandlers } from '../signals.ts';
import { startService } from '../service.ts';

interface ServeFlags {
  host?: string;
  port?: string;
  config?: string;
  substrate?: string;
  databaseUrl?: string;
  node?: string;
  advertiseUrl?: string;
  capacityCpu?: string;
  capacityMemory?: string;
  demo?: boolean;
}

/** Adds `serve` to the `ferry` program; it reads the program's global `--data-dir`. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the Ferry service (API, scheduler, supervisor)')
    .option('--host <host>', 'listen address (default 127.0.0.1)')
    .option('--port <port>', 'listen port (default 7070)')
    .option('--config <file>', 'YAML config file (default: FERRY_CONFIG, or <data-dir>/ferry.yaml)')
    .addOption(new Option('--substrate <kind>', 'where jobs run').choices(['process', 'container', 'swarm']))
    .option('--database-url <url>', 'PostgreSQL connection string (default: SQLite in the data folder)')
    .option('--node <name>', "this node's name in the cluster (default: the host name)")
    .option('--advertise-url <url>', "where the other nodes reach this node's API (default: the listen address)")
    .option('--capacity-cpu <quantity>', 'cpu this node offers migrations (default: all cores)')
    .option('--capacity-memory <quantity>', 'memory this node offers migrations (default: all memory)')
    .option('--demo', 'on start, register a demo tenant and run a demo migration (idempotent)')
    .action(async (opts: ServeFlags) => {
      const flags = program.opts<{ dataDir?: string }>();
      const raw: RawOptions = {
        ...(opts.host ? { host: opts.host } : {}),
        ...(opts.port ? { port: opts.port } : {}),
        ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
        ...(opts.substrate ? { substrate: opts.substrate } : {}),
        ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
        ...(opts.node ? { node: opts.node } : {}),
        ...(opts.advertiseUrl ? { advertiseUrl: opts.advertiseUrl } : {}),
        ...(opts.capacityCpu || opts.capacityMemory
          ? { capacity: { ...(opts.capacityCpu ? { cpu: opts.capacityCpu } : {}), ...(opts.capacityMemory ? { memory: opts.capacityMemory } : {}) } }
          : {}),
      };
      const config = compileConfig({ flags: raw, ...(opts.config ? { configPath: opts.config } : {}) });
      // Another live process took this node's name over (after a lost session): this one ends, its jobs keep running.
      const started = startService(config, undefined, { onNodeTaken: () => void started.then((s) => s.stop()).finally(() => process.exit(1)) });
      // Handled from the start: a SIGTERM while starting still stops cleanly (the node is `left`), never by the signal's default.
      installSignalHandlers(async () => (await started.catch(() => null))?.stop());
      const service = await started;
      if (opts.demo) {
        const { runDemo } = await import('../demo.ts');
        await runDemo(service, (line) => process.stdout.write(`${line}\n`));
      }
    });
}
