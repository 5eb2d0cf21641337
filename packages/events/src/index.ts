export * from './exchange';
export * from './plugin';
