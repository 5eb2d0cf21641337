export { MAX_LENGTH, PATTERN, isValid, validate } from './identifiers';
