/**
 * Entry point for Kubernetes' Container Runtime Interface (`@berth/api/cri`): every `runtime.v1`
 * message and enum, flat (`VersionRequest`, `ImageSpec`, `PodSandboxState`...), and the two
 * service definitions `RuntimeServiceService` and `ImageServiceService`.
 *
 * Not re-exported from `@berth/api`: the generated module is about 800 KB of JavaScript and takes
 * 60-90 ms to load here, which every program importing `@berth/api` (and berthd's start) would
 * pay. `@berth/cri` loads it on the first CRI call.
 */
export * from './gen/runtime/v1/api';
