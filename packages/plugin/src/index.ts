/**
 * @berth/plugin: plugin definitions, tokens, the dependency graph, config merging and the
 * reading of plugin modules. Light on purpose: no tsyringe, no reflect-metadata, so the stores
 * that import their tokens from here stay free of global side effects. The loader a daemon runs
 * is `@berth/plugin/loader`.
 */
export * from './token';
export * from './types';
export * from './graph';
export * from './config';
export * from './modules';
export * from './duration';
