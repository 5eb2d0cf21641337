export * from './leases-service';
