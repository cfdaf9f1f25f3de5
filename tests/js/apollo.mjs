#!/usr/bin/env node
// Apollo Client against a running Tollgate server, in three modes:
//
//   node tests/js/apollo.mjs [apq] [--url URL] [--token JWT] [--client-name NAME]
//       Automatic persisted queries with useGETForHashedQueries: for ViewerProfile and
//       ProductCatalog, the first request must go GET (hash only) -> PersistedQueryNotFound
//       -> POST (hash + query), and a second identical query must be served by one GET
//       (hash only). Needs a server mode that registers APQ documents (`open`).
//   node tests/js/apollo.mjs manifest OUT.json [--client-name NAME]
//       Writes an apollo-persisted-query-manifest from the contract's .graphql operations
//       with @apollo/generate-persisted-query-manifest (no server needed).
//   node tests/js/apollo.mjs allowlist MANIFEST.json [--url URL] [--token JWT] [--mutations]
//       Runs the manifest's queries by id only (@apollo/persisted-query-lists), checks that
//       they succeed and that an ad-hoc query and an unknown id are refused with
//       PERSISTED_QUERY_NOT_IN_LIST. --mutations also runs CreateOrder then ConfirmOrder by id
//       (creates an order) and checks the ids are accepted.
//
// URL and token also come from TOLLGATE_URL / TOLLGATE_TOKEN.
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client/core/index.js';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries/index.js';
import { generatePersistedQueryManifest } from '@apollo/generate-persisted-query-manifest';
import { generatePersistedQueryIdsFromManifest } from '@apollo/persisted-query-lists';
import { parse } from 'graphql';
import { authHeaders, cli, fail, operationsDir } from './lib.mjs';

const { endpoint, token, values, positionals } = cli({
  usage: 'apollo.mjs [apq | manifest OUT.json | allowlist MANIFEST.json] [--url URL] [--token JWT] [--client-name NAME] [--mutations]',
  options: { 'client-name': { type: 'string' }, mutations: { type: 'boolean' } },
});
const mode = positionals[0] || 'apq';
const clientName = values['client-name'] || process.env.TOLLGATE_CLIENT_NAME || '';
const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const problems = [];
let sent = 0;

/** A fetch that records what each request carried, for checking the link's wire behaviour. */
function recordingFetch(log) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === 'string' ? input : input.url);
    const method = (init.method || 'GET').toUpperCase();
    let params = {};
    if (method === 'GET') {
      for (const key of ['query', 'operationName', 'variables', 'extensions']) {
        const v = url.searchParams.get(key);
        if (v !== null) params[key] = key === 'query' || key === 'operationName' ? v : JSON.parse(v);
      }
    } else if (typeof init.body === 'string') {
      params = JSON.parse(init.body);
    }
    sent += 1;
    const response = await fetch(input, init);
    let body = null;
    try {
      body = await response.clone().json();
    } catch {
      body = null;
    }
    log.push({
      method,
      hasQuery: typeof params.query === 'string' && params.query.length > 0,
      hash: params.extensions?.persistedQuery?.sha256Hash ?? null,
      status: response.status,
      cacheControl: response.headers.get('cache-control') || '',
      codes: (body?.errors || []).map((e) => e?.extensions?.code || e?.message),
      messages: (body?.errors || []).map((e) => e?.message),
    });
    return response;
  };
}

function makeClient(persistedLinkOptions, log) {
  const http = new HttpLink({ uri: endpoint, fetch: recordingFetch(log), headers: authHeaders(token) });
  return new ApolloClient({
    cache: new InMemoryCache(),
    link: createPersistedQueryLink(persistedLinkOptions).concat(http),
    // Sends the apollographql-client-name header, which selects the server's per-client list.
    ...(clientName ? { clientAwareness: { name: clientName } } : {}),
    defaultOptions: { query: { fetchPolicy: 'no-cache', errorPolicy: 'all' }, mutate: { errorPolicy: 'all' } },
  });
}

function readOperation(name) {
  return readFileSync(path.join(operationsDir(), `${name}.graphql`), 'utf8');
}

const describe = (entries) => entries.map((e) => `${e.method}${e.hasQuery ? '+query' : ''}${e.hash ? '+hash' : ''}->${e.status}${e.codes.length ? `(${e.codes.join(',')})` : ''}`).join(' ');

async function runApq() {
  const nonce = randomUUID().replace(/-/g, '').slice(0, 12);
  for (const name of ['ViewerProfile', 'ProductCatalog']) {
    // A per-run alias makes the document new to the server, so the first request must miss
    // even when an earlier run registered the plain operation.
    const text = readOperation(name).replace('{', `{\n  tollgateRun${nonce}: __typename`);
    const document = parse(text);
    const log = [];
    const client = makeClient({ sha256, useGETForHashedQueries: true }, log);

    const first = await queryOrReport(client, document, name, log);
    if (!first) continue;
    const miss = log.splice(0);
    const [get, post] = miss;
    if (miss.length !== 2 || get.method !== 'GET' || get.hasQuery || !get.hash || post.method !== 'POST' || !post.hasQuery || post.hash !== get.hash) {
      problems.push(`${name}: first run should be GET(hash) then POST(hash+query), got: ${describe(miss)}`);
    } else {
      if (get.status !== 200) problems.push(`${name}: APQ miss answered HTTP ${get.status}, expected 200`);
      if (!get.codes.includes('PERSISTED_QUERY_NOT_FOUND') || !get.messages.includes('PersistedQueryNotFound')) {
        problems.push(`${name}: APQ miss should carry message PersistedQueryNotFound and code PERSISTED_QUERY_NOT_FOUND, got ${JSON.stringify(get.messages)} ${JSON.stringify(get.codes)}`);
      }
      if (!/no-cache|no-store/.test(get.cacheControl)) problems.push(`${name}: APQ miss is cacheable (Cache-Control: "${get.cacheControl}")`);
    }
    checkResult(name, first);

    const second = await queryOrReport(client, document, name, log);
    if (!second) continue;
    const hit = log.splice(0);
    if (hit.length !== 1 || hit[0].method !== 'GET' || hit[0].hasQuery || !hit[0].hash) {
      problems.push(`${name}: second run should be one GET(hash), got: ${describe(hit)}`);
    }
    checkResult(name, second);
    console.log(`  ${name}: miss ${describe(miss)}; hit ${describe(hit)}`);
  }
  return `2 operations, ${sent} requests (expected per operation: miss GET -> POST, hit GET) against ${endpoint}`;
}

/** Run a query; on a network-level failure record what was sent and return null. */
async function queryOrReport(client, document, name, log) {
  try {
    return await client.query({ query: document });
  } catch (err) {
    problems.push(`${name}: ${err.message}; requests: ${describe(log.splice(0))}`);
    return null;
  }
}

function checkResult(name, result) {
  const errors = result.errors || result.error?.graphQLErrors || [];
  if (result.error && !errors.length) problems.push(`${name}: ${result.error.message}`);
  for (const e of errors) problems.push(`${name}: error ${e.extensions?.code || ''} ${e.message}`);
  if (!result.data || !Object.keys(result.data).length) problems.push(`${name}: no data`);
}

async function runManifest(out) {
  if (!out) fail('usage: apollo.mjs manifest OUT.json');
  const dir = operationsDir();
  const manifest = await generatePersistedQueryManifest({ documents: [`${dir}/*.graphql`] }, undefined);
  if (clientName) for (const op of manifest.operations) op.clientName = clientName;
  const kinds = manifest.operations.reduce((acc, op) => ({ ...acc, [op.type]: (acc[op.type] || 0) + 1 }), {});
  for (const op of manifest.operations) {
    if (op.id !== sha256(op.body)) problems.push(`${op.name}: id is not the sha256 of its body`);
  }
  if (!manifest.operations.length) problems.push(`no operations found in ${dir}`);
  writeFileSync(out, `${JSON.stringify(manifest, null, 2)}\n`);
  const summary = Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ');
  return `${manifest.operations.length} operations (${summary}) from ${dir} -> ${out}`;
}

async function runAllowlist(manifestPath) {
  if (!manifestPath) fail('usage: apollo.mjs allowlist MANIFEST.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  if (manifest.format !== 'apollo-persisted-query-manifest' || manifest.version !== 1) {
    fail(`${manifestPath} is not an apollo-persisted-query-manifest v1`);
  }
  const log = [];
  const client = makeClient(generatePersistedQueryIdsFromManifest({ loadManifest: () => manifest }), log);
  const byName = new Map(manifest.operations.map((op) => [op.name, op]));
  let ran = 0;
  for (const op of manifest.operations.filter((o) => o.type === 'query')) {
    const result = await client.query({ query: parse(op.body) });
    checkResult(op.name, result);
    ran += 1;
    console.log(`  ${op.name}: ${describe(log.slice(-1))}${result.errors?.length ? ' with errors' : ''}`);
  }
  if (values.mutations) ran += await runMutations(client, byName, log);
  const leaked = log.filter((e) => e.hasQuery);
  if (leaked.length) problems.push(`${leaked.length} request(s) sent document text; the allowlist client must send ids only`);
  if (log.some((e) => e.codes.includes('PERSISTED_QUERY_NOT_FOUND'))) {
    problems.push('the server answered PERSISTED_QUERY_NOT_FOUND for a registered id (allowlist mode must use PERSISTED_QUERY_NOT_IN_LIST for unknown ids)');
  }

  const adHoc = await post({ query: `query AdHoc${randomUUID().slice(0, 8)} { __typename }` });
  expectNotInList('an ad-hoc query', adHoc);
  const unknownId = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: sha256(randomUUID()) } } });
  expectNotInList('an unknown id', unknownId);
  return `${ran} operations run by id; ad-hoc query and unknown id expected to be refused with PERSISTED_QUERY_NOT_IN_LIST; against ${endpoint}`;
}

async function runMutations(client, byName, log) {
  const catalog = byName.get('ProductCatalog');
  const create = byName.get('CreateOrder');
  const confirm = byName.get('ConfirmOrder');
  if (!catalog || !create || !confirm) {
    problems.push('--mutations needs ProductCatalog, CreateOrder and ConfirmOrder in the manifest');
    return 0;
  }
  const products = await client.query({ query: parse(catalog.body), variables: { first: 5 } });
  const product = products.data?.products?.edges?.map((e) => e.node).find((p) => p.stock > 0);
  if (!product) {
    problems.push('--mutations: no product in stock to order');
    return 0;
  }
  const input = { idempotencyKey: randomUUID(), currency: product.price.currency, items: [{ productId: product.id, quantity: 1 }] };
  const created = await client.mutate({ mutation: parse(create.body), variables: { input } });
  checkIdAccepted('CreateOrder', created, log);
  const order = created.data?.createOrder?.order;
  console.log(`  CreateOrder: ${describe(log.slice(-1))} order ${order ? order.id : '(none)'}`);
  if (!order) {
    problems.push(`CreateOrder returned no order: ${JSON.stringify(created.data?.createOrder?.userErrors || created.errors)}`);
    return 1;
  }
  const confirmed = await client.mutate({ mutation: parse(confirm.body), variables: { id: order.id, expectedVersion: order.version } });
  checkIdAccepted('ConfirmOrder', confirmed, log);
  console.log(`  ConfirmOrder: ${describe(log.slice(-1))}${confirmed.errors?.length ? ` (${confirmed.errors.map((e) => e.extensions?.code).join(',')})` : ''}`);
  return 2;
}

function checkIdAccepted(name, result, log) {
  // Mutations may fail on permissions (a CUSTOMER cannot confirm); the id must still be known.
  const last = log[log.length - 1];
  const refused = (last?.codes || []).filter((c) => /^PERSISTED_QUERY|GRAPHQL_VALIDATION_FAILED|GRAPHQL_PARSE_FAILED/.test(c || ''));
  if (refused.length) problems.push(`${name}: id refused (${refused.join(',')})`);
  if (!result.data) problems.push(`${name}: no data`);
}

async function post(body) {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...authHeaders(token),
      ...(clientName ? { 'apollographql-client-name': clientName } : {}),
    },
    body: JSON.stringify(body),
  });
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  return { status: response.status, json };
}

function expectNotInList(what, { status, json }) {
  const errors = json?.errors || [];
  const codes = errors.map((e) => e?.extensions?.code);
  if (!codes.includes('PERSISTED_QUERY_NOT_IN_LIST')) {
    problems.push(`${what} was not refused with PERSISTED_QUERY_NOT_IN_LIST: HTTP ${status} ${JSON.stringify(json).slice(0, 300)}`);
  } else if (json.data) {
    problems.push(`${what} was refused but the response still carries data`);
  }
  if (codes.includes('PERSISTED_QUERY_NOT_FOUND') || errors.some((e) => e?.message === 'PersistedQueryNotFound')) {
    problems.push(`${what} got a PersistedQueryNotFound answer, which makes Apollo clients retry with the full text`);
  }
  console.log(`  ${what}: HTTP ${status} ${codes.join(',')}`);
}

const modes = { apq: () => runApq(), manifest: () => runManifest(positionals[1]), allowlist: () => runAllowlist(positionals[1]) };
if (!modes[mode]) fail(`unknown mode "${mode}"; use apq, manifest OUT.json or allowlist MANIFEST.json`, 2);
let summary = '';
try {
  summary = await modes[mode]();
} catch (err) {
  problems.push(`${err.name}: ${err.message}`);
}
for (const p of problems) console.error(`  - ${p}`);
const status = problems.length ? `FAILED (${problems.length} problem${problems.length > 1 ? 's' : ''})` : 'ok';
console.log(`apollo ${mode}: ${status}${summary ? `, ${summary}` : ''}`);
process.exit(problems.length ? 1 : 0);
