export { RunOptions, RunResult, run } from './run';
