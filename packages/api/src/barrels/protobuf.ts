// google.protobuf well-known types, as ts-proto generates them.
export * from '../gen/google/protobuf/any';
export * from '../gen/google/protobuf/empty';
export * from '../gen/google/protobuf/field_mask';
export * from '../gen/google/protobuf/timestamp';
