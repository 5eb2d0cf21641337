export * from './temp';
export * from './ctr';
export * from './daemon';
export * from './containerd';
export * from './events';
export * from './ctr-events';
export * from './reference-tools';
export * from './registry';
