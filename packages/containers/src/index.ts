export * from './containers-service';
export * from './plugins';
