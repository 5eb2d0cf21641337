/**
 * @berth/system: Berth's own server extensions, the in-process services behind
 * berth.services.namespaces.v1 (namespace delete with cascade, usage per namespace) and
 * berth.services.gc.v1 (collect now, explain). The gRPC plugins are in `@berth/system/plugins`.
 */
export * from './namespace-admin';
export * from './gc-admin';
