/**
 * @berth/transfer: containerd 2.x's Transfer API, the local transferrer. Its operations run
 * without the daemon too (pull, push, import, export and tag over the services in
 * {@link TransferServices}); the plugins are in `@berth/transfer/plugins`.
 */
export * from './types';
export * from './store';
export * from './tag';
export * from './stream-adapters';
export * from './transferrer';
export * from './pull';
export * from './push';
export * from './import';
export * from './export';
export * from './import-naming';
export { blobName } from './pull-progress';
