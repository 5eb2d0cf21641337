import { type ImageRuntimeConfig, type Spec, applyImageConfig, applySpecOptions, applyUser, defaultSpec, resolveUser, rootfsFileReader } from '@berth/oci-spec';

/**
 * Builds the spec of container `id` in `namespace` as containerd's client would for an image
 * whose config is `image` and whose root file system is the directory `rootfs` (a bind mount
 * of it, as a snapshotter returns for a one-layer view): the default Linux spec, the image's
 * entrypoint, cmd, env and working dir, the user `web` looked up in its /etc/passwd, then a
 * command, an extra variable, a terminal and a memory limit.
 */
export function specForImage(namespace: string, id: string, image: ImageRuntimeConfig, rootfs: string): Spec {
  const spec = applyImageConfig(defaultSpec(namespace, id), image);
  applyUser(spec, resolveUser('web', rootfsFileReader([{ type: 'bind', source: rootfs, options: ['ro', 'rbind'] }])));
  return applySpecOptions(spec, { command: ['--port', '8080'], env: ['MODE=production'], tty: true, memoryLimit: 256 << 20 }, image);
}
