/**
 * A dynamic import that the CommonJS output keeps as an import (an ES module cannot be required
 * on Node 20). In a file of its own: the code cache (@berth/compile-cache) leaves a file that
 * calls `import()` to Node, as a script compiled from cached data cannot import on Node 20, and
 * this keeps the rest of the loader, and berthd's bundle, which leaves this file out, cached.
 */
export const nativeImport = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;
