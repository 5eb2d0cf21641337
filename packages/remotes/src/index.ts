/**
 * @berth/remotes: a registry client for Node programs and for berthd's transfer service.
 */
export * from './hosts';
export * from './hosts-config';
