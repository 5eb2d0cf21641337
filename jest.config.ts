/** @jest-config-loader esbuild-register */
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from 'jest';

// tsyringe reads constructor parameter types from decorator metadata: without
// decoratorMetadata swc compiles fine and tsyringe silently injects undefined.
const swc = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
};

/** One jest project per workspace project that has tests; @berth/* resolve to sources. */
function projects(): Config['projects'] {
  const out: NonNullable<Config['projects']> = [];
  for (const group of ['packages', 'apps', 'tools']) {
    const dir = join(__dirname, group);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const rootDir = join(dir, name);
      if (!existsSync(join(rootDir, 'package.json'))) continue;
      out.push({
        displayName: `${group}/${name}`,
        rootDir,
        testEnvironment: 'node',
        testMatch: ['<rootDir>/src/**/*.test.ts'],
        transform: { '^.+\\.ts$': ['@swc/jest', swc] },
        moduleNameMapper: {
          // Tools that tests import; everything else under @berth/ is a package.
          '^@berth/fixtures$': join(__dirname, 'tools/fixtures/src/index.ts'),
          '^@berth/([a-z0-9-]+)$': join(__dirname, 'packages/$1/src/index.ts'),
          // Subpath entry points (`@berth/api/events`) live at packages/<pkg>/src/<entry>.ts.
          '^@berth/([a-z0-9-]+)/([a-z0-9-]+)$': join(__dirname, 'packages/$1/src/$2.ts'),
        },
        setupFiles: ['reflect-metadata'],
      });
    }
  }
  return out;
}

const config: Config = {
  projects: projects(),
  testTimeout: 60_000,
  globalSetup: '<rootDir>/tools/jest/global-setup.js',
  globalTeardown: '<rootDir>/tools/jest/global-teardown.js',
  // Tests start daemons, mount filesystems and spawn ctr: two workers on a 2-core machine.
  maxWorkers: 2,
};

export default config;
