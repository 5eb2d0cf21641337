export * from './header';
export * from './reader';
export * from './writer';
