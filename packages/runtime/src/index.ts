/**
 * @berth/runtime: containerd's runtime v2. The task manager runs each task through a shim
 * (`containerd-shim-runc-v2` for `io.containerd.runc.v2`), in a bundle under the state dir,
 * and speaks the shim's ttrpc Task API.
 */
export * from './types';
export * from './bundle';
export * from './shim-binary';
export * from './shim-task';
export * from './task-manager';
export * from './plugin';
