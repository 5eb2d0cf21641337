export * from './exchange';
export * from './plugin';
export * from './event-recorder';
