// Drives the real @actions/cache client (the library actions/cache is built
// on) against whatever service the ACTIONS_* variables point at:
//   node cache.mjs save KEY PATH...
//   node cache.mjs restore KEY RESTORE_KEYS(comma-separated or "-") PATH...
// Prints one result line, "SAVED <id>" or "RESTORED <matched key>", after
// the library's own log lines.
import * as cache from '@actions/cache';

const [op, key, ...rest] = process.argv.slice(2);
if (op === 'save') {
  const id = await cache.saveCache(rest, key);
  console.log(`SAVED ${id}`);
} else if (op === 'restore') {
  const [restoreKeys, ...paths] = rest;
  const keys = restoreKeys === '-' ? [] : restoreKeys.split(',');
  const hit = await cache.restoreCache(paths, key, keys);
  console.log(`RESTORED ${hit ?? ''}`);
} else {
  console.error(`unknown op ${op}`);
  process.exit(2);
}
// The library's HTTP agents keep sockets alive for seconds after the last
// request; the result is printed, so do not wait for them.
process.exit(0);
