/** The task helpers the tests here use; they live in @berth/testing, shared with tools/reliability. */
export { BUSYBOX, cleanupShims, eventually, ociSpec, populateBusybox, runcContainer, shimSocket, shimsOf } from '@berth/testing';
