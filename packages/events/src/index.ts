export * from './exchange';
export * from './subscriber-queue';
export * from './plugin';
export * from './event-recorder';
