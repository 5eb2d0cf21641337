export * from './service';
export * from './client';
