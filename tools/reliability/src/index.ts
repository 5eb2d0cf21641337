export * from './soak';
export * from './stats';
export * from './kill-points';
