export * from './soak';
export * from './stats';
