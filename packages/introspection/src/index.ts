export * from './introspection-service';
export * from './plugins';
