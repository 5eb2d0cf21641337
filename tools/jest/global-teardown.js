// Puts back host settings that tests change as a side effect of the real parts they run: the CNI
// bridge plugin (isGateway) turns on net.ipv4.ip_forward and never turns it off. Test files run
// in parallel and share it, so it is read before the first and restored after the last.
const { readFileSync, writeFileSync } = require('node:fs');

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

module.exports = async function globalTeardown() {
  const before = globalThis.__berthIpForward;
  if (before === undefined) return;
  try {
    if (readFileSync(IP_FORWARD, 'utf8').trim() !== before) writeFileSync(IP_FORWARD, `${before}\n`);
  } catch {
    // Not root, or no /proc: nothing was changed by the tests either.
  }
};
