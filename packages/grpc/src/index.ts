export * from './service';
export * from './client';
export * from './unix-server';
