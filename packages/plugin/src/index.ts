import 'reflect-metadata';

export * from './token';
export * from './types';
export * from './graph';
export * from './config';
export * from './loader';
export * from './modules';
