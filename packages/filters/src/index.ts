export type { Adaptor, FieldLookup, FieldNode, FieldTree } from './adaptor';
export { MapField, adaptorFromFields, adaptorFromTree, labelsAdaptor, mapField, nonEmpty } from './adaptor';
export type { Filter, Operator } from './filter';
export { ALWAYS, AllOf, AnyOf, Selector } from './filter';
export { FilterParseError, checkFilterFields, parse, parseAll, parseListFilters, selectorsOf } from './parser';
