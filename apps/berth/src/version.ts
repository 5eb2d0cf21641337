/** The berth CLI's own version (its package's). */
export const CLI_VERSION: string = (require('../package.json') as { version: string }).version;
