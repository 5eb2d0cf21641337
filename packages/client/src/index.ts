/**
 * @berth/client: a typed client for berthd and containerd over their unix socket.
 *
 * Importing this module is cheap: it loads no gRPC stack and no generated messages. `connect()`
 * loads them (about 200 ms of module loading on a cold start), so a program that only prints
 * its own version or help never pays for them.
 */
import type { BerthClient, ConnectOptions } from './client';

/** Connects to a daemon's socket and waits until it accepts the connection. */
export async function connect(options: ConnectOptions): Promise<BerthClient> {
  // Loaded here, not at the top: see the module comment.
  const { BerthClient: Client } = require('./client') as typeof import('./client');
  return Client.connect(options);
}

export type { BerthClient, ConnectOptions, ContentInfo, DaemonEvent, Image, SnapshotInfo } from './client';
export type { RequestOptions } from './connection';
export type { Container, ContainerInfo, NewContainerOptions } from './containers';
export type { Descriptor, Platform } from './image-content';
export type { StdioOptions } from './cio';
export type { Collection, Explanation, NamespaceRemoval, NamespaceUsage, Reference, SharedSize, Size, Usage } from './system';
export type { ExecOptions, ExitStatus, Process, ProcessStatus, Task, TaskStats } from './tasks';
export type { BlobState, Credentials, CredentialsCallback, PullOptions, PushOptions, RegistryOptions, TransferEvent, TransferOperation, TransferTotals } from './transfer';
// The spec helpers, so that a client program needs one import.
export * from '@berth/oci-spec';
