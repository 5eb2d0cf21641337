import { validate } from '@berth/identifiers';

/** Checks names a user gave for namespaces or containers, with containerd's messages for the bad ones. */
export function checkNames(names: readonly string[]): string[] {
  return names.map((name) => {
    try {
      validate(name);
      return `${name}: ok`;
    } catch (err) {
      return (err as Error).message;
    }
  });
}
