export * from './namespaces-service';
export * from './plugins';
