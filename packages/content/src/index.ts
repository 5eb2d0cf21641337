/**
 * Berth's content store: the interfaces every implementation provides, digest helpers, the
 * local filesystem store (context-free, usable by any Node program), and the daemon's namespaced
 * store over the metadata database (context-first) with its in-process service. The conformance
 * suite (`@berth/content/testsuite`) and the plugins (`@berth/content/plugins`, which load
 * grpc-js) are separate entries.
 */
export * from './types';
export * from './digest';
export { FileLabelStore, MAX_LABEL_SIZE, validateLabels, type LabelRecord, type LabelStore } from './label-store';
export { LocalContentStore, type LocalContentStoreOptions } from './local-store';
export { MAX_REF_LENGTH, validateRef } from './ingest';
export { MAX_INGEST_REF_LENGTH, validateIngestRef } from './ingest-ref';
export { DEFAULT_LOCK_RETRY, type LockRetry } from './ref-locks';
export {
  INGEST_EXPIRY_MS,
  MetadataContentStore,
  MetadataWriter,
  type BlobRecord,
  type ContentSharingPolicy,
  type IngestRecord,
  type MetadataContentStoreOptions,
} from './metadata-store';
export { ContentService, ContentServiceToken, ContentStoreToken } from './content-service';
export { blobsGcKind, contentGcKinds, ingestsGcKind } from './gc-kinds';
