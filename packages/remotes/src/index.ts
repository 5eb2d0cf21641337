/**
 * @berth/remotes: a registry client for Node programs and for berthd's transfer service.
 */
export * from './hosts';
export * from './hosts-config';
export * from './reference';
export * from './descriptor';
export * from './digest';
export * from './auth-challenge';
export * from './auth';
export * from './registry-auth-error';
export * from './response-error';
export * from './registry-http';
export * from './resolver';
export * from './fetcher';
export * from './pusher';
export * from './static-hosts';
export * from './registry-client';
export { abortError, raceAbort, sleep } from './abort';
export * from './concurrency-limit';
