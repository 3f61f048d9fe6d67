/** Signal handling for `ferry serve`, in one place: SIGINT/SIGTERM drain and stop, never killing jobs. */
export function installSignalHandlers(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`ferry: ${signal}: stopping (running migrations keep running; the next start re-attaches)\n`);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`ferry: stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
