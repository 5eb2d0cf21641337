import { MetricsServer, Registry, registerProcessMetrics } from '@berth/metrics';
import { nullLogger } from '@berth/log';

/**
 * Serves this process's metrics in Prometheus' text format at containerd's path, on a free
 * loopback port (as berthd does for `[metrics] address`), scrapes them once, and returns the
 * families found and what another path answers.
 */
export async function scrapeOnce(): Promise<{ families: string[]; otherPath: number }> {
  const registry = new Registry();
  const stop = registerProcessMetrics(registry);
  const server = await MetricsServer.listen('127.0.0.1:0', registry, nullLogger, stop);
  try {
    const text = await (await fetch(`http://${server.address}/v1/metrics`)).text();
    const families = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
    const otherPath = (await fetch(`http://${server.address}/metrics`)).status;
    return { families, otherPath };
  } finally {
    await server.close();
  }
}
