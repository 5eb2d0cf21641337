export * from './tar';
export * from './root-path';
export * from './compression';
export * from './xattr';
export * from './apply';
export * from './diff';
export * from './tree';
export * from './differ';
