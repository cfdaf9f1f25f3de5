// Shared command-line handling for the Node.js test clients.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');

// Where the contract's sample operations live: the repo's copy when there is one.
const OPERATION_DIRS = [
  path.join(REPO_ROOT, 'contract', 'operations'),
  path.join(REPO_ROOT, 'docs', 'contract', 'operations'),
  '/work/shared/contract/operations',
];

/** Parse `--url`, `--token` (or env TOLLGATE_URL / TOLLGATE_TOKEN, or the first two
 *  positionals when `positionalUrl` is set) plus extra options; exits with usage on error. */
export function cli({ usage, options = {}, positionalUrl = false }) {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...options,
      },
    });
  } catch (err) {
    console.error(`${err.message}\nusage: ${usage}`);
    process.exit(2);
  }
  const { values } = parsed;
  const positionals = [...parsed.positionals];
  if (values.help) {
    console.log(`usage: ${usage}`);
    process.exit(0);
  }
  let url = values.url;
  let token = values.token;
  if (positionalUrl) {
    if (!url && positionals.length && /^https?:\/\//.test(positionals[0])) url = positionals.shift();
    if (token === undefined && positionals.length) token = positionals.shift();
  }
  url = url || process.env.TOLLGATE_URL || 'http://127.0.0.1:8000';
  token = token ?? process.env.TOLLGATE_TOKEN ?? '';
  const base = url.replace(/\/+$/, '').replace(/\/graphql$/, '');
  return { base, endpoint: `${base}/graphql`, token, values, positionals };
}

/** Headers that authenticate as the given bearer token (none when the token is empty). */
export function authHeaders(token) {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** A fetch that adds the Authorization header unless the request already sets one. */
export function authorizedFetch(token, fetchImpl = globalThis.fetch) {
  return (input, init = {}) => {
    const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
    if (token && !headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
    return fetchImpl(input, { ...init, headers });
  };
}

/** The directory holding the contract's `.graphql` operations (override: TOLLGATE_OPERATIONS). */
export function operationsDir() {
  const candidates = process.env.TOLLGATE_OPERATIONS
    ? [process.env.TOLLGATE_OPERATIONS]
    : OPERATION_DIRS;
  const found = candidates.find((dir) => existsSync(dir));
  if (!found) fail(`no operations directory found (tried ${candidates.join(', ')}); set TOLLGATE_OPERATIONS`);
  return found;
}

/** Print a failure summary line and exit non-zero. */
export function fail(message, code = 1) {
  console.error(`FAIL: ${message}`);
  process.exit(code);
}
