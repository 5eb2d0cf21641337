/**
 * Berth's content store: the interfaces every implementation provides, digest helpers, and the
 * local filesystem store. The conformance suite is a separate entry, `@berth/content/testsuite`,
 * so production code never loads jest.
 */
export * from './types';
export * from './digest';
export { FileLabelStore, MAX_LABEL_SIZE, validateLabels, type LabelRecord, type LabelStore } from './label-store';
export { LocalContentStore, type LocalContentStoreOptions } from './local-store';
export { MAX_REF_LENGTH, validateRef } from './ingest';
export { DEFAULT_LOCK_RETRY, type LockRetry } from './ref-locks';
