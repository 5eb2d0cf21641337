export * from './frame';
export * from './service';
export * from './server';
export * from './client';
