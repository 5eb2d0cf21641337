import { Worker } from 'node:worker_threads';

/** One Version call: when it started (ms since the epoch, sub-millisecond) and how long it took (ms). */
export type ProbeSample = [at: number, ms: number];

/**
 * Calls Version every `intervalMs` on its own connection from a worker thread, so the figures
 * are the daemon's latency and not the event loop of the process generating the load.
 */
export class VersionProbe {
  readonly samples: ProbeSample[] = [];
  private readonly worker: Worker;
  private readonly ended: Promise<void>;

  constructor(address: string, intervalMs = 20) {
    const grpc = JSON.stringify(require.resolve('@grpc/grpc-js'));
    // Plain JavaScript (no TypeScript loader in a worker); Version's request and reply are
    // treated as opaque bytes, an empty request being a valid VersionRequest.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { performance } = require('node:perf_hooks');
      const grpc = require(${grpc});
      const client = new grpc.Client('unix:' + workerData.address, grpc.credentials.createInsecure());
      let stopped = false;
      parentPort.on('message', () => { stopped = true; });
      const call = () => new Promise((resolve, reject) =>
        client.makeUnaryRequest('/containerd.services.version.v1.Version/Version', (b) => b, (b) => b, Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
      (async () => {
        while (!stopped) {
          const t0 = performance.now();
          await call();
          parentPort.postMessage([performance.timeOrigin + t0, performance.now() - t0]);
          await new Promise((r) => setTimeout(r, workerData.intervalMs));
        }
        client.close();
      })().catch((err) => parentPort.postMessage({ error: String(err) }));
    `;
    this.worker = new Worker(code, { eval: true, workerData: { address, intervalMs } });
    this.worker.on('message', (m: ProbeSample | { error: string }) => {
      if (Array.isArray(m)) this.samples.push(m);
      else this.failure = m.error;
    });
    this.ended = new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }

  /** Why the probe stopped early, if it did. */
  failure?: string;

  /** Stops probing and waits for the worker to end. */
  async stop(): Promise<void> {
    this.worker.postMessage('stop');
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await this.ended;
    clearTimeout(timer);
  }
}
