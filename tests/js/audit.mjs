#!/usr/bin/env node
// GraphQL-over-HTTP conformance: runs graphql-http's server audits against a running server
// and prints each result. Exit 1 on any MUST or SHOULD failure; MAY failures are notices.
//
//   node tests/js/audit.mjs [--url URL] [--token JWT] [--json OUT.json] [--timeout-ms 10000]
//   (URL and token also from TOLLGATE_URL / TOLLGATE_TOKEN, or as two positionals)
import { writeFileSync } from 'node:fs';
import { serverAudits } from 'graphql-http';
import { authorizedFetch, cli } from './lib.mjs';

const { endpoint, token, values } = cli({
  usage: 'audit.mjs [URL] [TOKEN] [--json OUT.json] [--timeout-ms MS]',
  positionalUrl: true,
  options: { json: { type: 'string' }, 'timeout-ms': { type: 'string' } },
});
const timeoutMs = Number(values['timeout-ms'] || 10000);

const LEVEL = { error: 'MUST', warn: 'SHOULD', notice: 'MAY' };

async function runAudit(audit) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([audit.fn(), timeout]);
  } catch (err) {
    // A crash or a hang counts as a failure at the audit's own level.
    const level = audit.name.split(' ')[0];
    const status = level === 'MUST' ? 'error' : level === 'SHOULD' ? 'warn' : 'notice';
    return { id: audit.id, name: audit.name, status, reason: `audit threw: ${err.message}` };
  } finally {
    clearTimeout(timer);
  }
}

async function describeResponse(response) {
  if (!response || typeof response.status !== 'number') return '';
  let body = '';
  try {
    body = (await response.clone().text()).replace(/\s+/g, ' ').slice(0, 200);
  } catch {
    body = '(body already read)';
  }
  return ` [HTTP ${response.status} ${response.headers.get('content-type') || '-'}] ${body}`;
}

const audits = serverAudits({ url: endpoint, fetchFn: authorizedFetch(token) });
console.log(`graphql-http ${audits.length} audits against ${endpoint}${token ? ' (with bearer token)' : ' (anonymous)'}`);
const counts = { ok: 0, MUST: 0, SHOULD: 0, MAY: 0 };
const report = [];
for (const audit of audits) {
  // Sequential on purpose: a burst of 60 requests could trip the server's rate limiter.
  const result = await runAudit(audit);
  if (result.status === 'ok') {
    counts.ok += 1;
    console.log(`  ok      ${audit.id} ${audit.name}`);
    report.push({ id: audit.id, name: audit.name, status: 'ok' });
    continue;
  }
  const level = LEVEL[result.status] || 'MUST';
  counts[level] += 1;
  const tag = { MUST: 'FAIL', SHOULD: 'WARN', MAY: 'notice' }[level];
  const detail = await describeResponse(result.response);
  console.log(`  ${tag.padEnd(7)} ${audit.id} ${audit.name}\n          -> ${result.reason}${detail}`);
  report.push({ id: audit.id, name: audit.name, status: result.status, reason: result.reason, httpStatus: result.response?.status ?? null });
}

if (values.json) writeFileSync(values.json, JSON.stringify({ endpoint, counts, audits: report }, null, 2));
console.log(
  `graphql-http audit: ${counts.ok} ok, ${counts.MUST} MUST failures, ${counts.SHOULD} SHOULD failures, ${counts.MAY} notices`,
);
process.exit(counts.MUST || counts.SHOULD ? 1 : 0);
