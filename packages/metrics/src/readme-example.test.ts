import { scrapeOnce } from '../examples/serve-process-metrics';

describe('README example: serving process metrics', () => {
  it("answers /v1/metrics with Prometheus' process families, and 404 elsewhere", async () => {
    const { families, otherPath } = await scrapeOnce();
    expect(families).toEqual(expect.arrayContaining(['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds']));
    expect(otherPath).toBe(404);
  });
});
