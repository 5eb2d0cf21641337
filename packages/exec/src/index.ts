export { FifoPool } from './fifo-pool';
export { RunOptions, RunResult, run } from './run';
