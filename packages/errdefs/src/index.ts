export * from './errors';
export * from './grpc';
export * from './go-quote';
