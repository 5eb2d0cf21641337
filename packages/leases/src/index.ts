export * from './leases-service';
export * from './plugins';
