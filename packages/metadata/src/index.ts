export * from './schema';
export * from './db';
export * from './labels';
export * from './namespace-store';
export * from './leases';
export * from './plugin';
