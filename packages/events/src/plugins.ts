/**
 * `@berth/events/plugins`: the events API plugin (gRPC and ttrpc). A separate entry point, because
 * it loads grpc-js and the main entry must not: every service and event consumer imports
 * `@berth/events`, and a program that only consumes events must not load a server stack.
 */
export * from './grpc-plugin';
