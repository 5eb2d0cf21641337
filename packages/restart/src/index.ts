/**
 * @berth/restart: containerd's restart monitor (`io.containerd.internal.v1 restart`) and its
 * labels, for clients that label containers (nerdctl's `--restart`, containerd's `restart` package).
 */
export * from './policy';
export * from './restart-monitor';
export * from './plugin';
