import type { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';

/**
 * The part of a ts-proto message object (`TaskExit`, `Descriptor`, ...) that the Any helpers use.
 * Every generated message constant satisfies it.
 */
export interface MessageType<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): T;
  // ts-proto declares this generically (Exact<DeepPartial<T>, I>); any keeps every message assignable.
  fromPartial(object: any): T;
}

type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;

/** A message value with every field optional, at any depth: what `fromPartial` accepts. */
export type DeepPartial<T> = T extends Builtin
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : T extends ReadonlyArray<infer U>
      ? ReadonlyArray<DeepPartial<U>>
      : T extends { $case: string; value: unknown }
        ? { $case: T['$case']; value?: DeepPartial<T['value']> }
        : T extends {}
          ? { [K in keyof T]?: DeepPartial<T[K]> }
          : Partial<T>;
