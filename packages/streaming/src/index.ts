/**
 * @berth/streaming: streams that clients open (containerd 2.x's Streaming API) and that
 * transfers use for progress, credentials and data. Plugins are in `@berth/streaming/plugins`.
 */
export * from './stream';
export * from './manager';
export * from './byte-stream';
