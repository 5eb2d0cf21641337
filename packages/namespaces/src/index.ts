export * from './namespaces-service';
