export * from './introspection-service';
