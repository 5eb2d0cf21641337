export * from './containers-service';
