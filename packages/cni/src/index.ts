export * from './netns';
export * from './config';
export * from './result';
export * from './invoke';
export * from './cache';
export * from './cni';
export * from './bandwidth';
