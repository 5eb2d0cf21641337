/**
 * @berth/mount: mounts containerd `Mount` lists on the host through util-linux mount(8) (argument
 * arrays, never a shell), unmounts them, and reads /proc/self/mountinfo. No native addon.
 */
export * from './types';
export * from './mountinfo';
export * from './mount';
