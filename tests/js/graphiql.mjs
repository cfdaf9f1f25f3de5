#!/usr/bin/env node
// GraphiQL end to end in headless Chromium: open <url>/graphql as a browser with no token and
// check the first screen (a prompt to paste one, no error in the result pane, no console
// error, no failed request), paste the token and check the schema is fetched at once, load an
// operation, run it, check the result and the cost display, take a screenshot, and fail on
// any CSP violation, console error, page error or request to another origin.
//
//   node tests/js/graphiql.mjs [--url URL] [--token JWT] [--screenshot OUT.png]
//        [--operation FILE.graphql] [--expect viewer] [--chromium /usr/bin/chromium]
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { cli, fail, operationsDir } from './lib.mjs';

const { base, endpoint, token, values, positionals } = cli({
  usage: 'graphiql.mjs [--url URL] [--token JWT] [--screenshot OUT.png] [--operation FILE.graphql] [--expect TEXT]',
  options: {
    screenshot: { type: 'string' },
    operation: { type: 'string' },
    expect: { type: 'string' },
    chromium: { type: 'string' },
    'timeout-ms': { type: 'string' },
  },
});
const screenshot = values.screenshot || positionals[0] || path.join(tmpdir(), 'tollgate-graphiql.png');
const operationFile = values.operation || path.join(operationsDir(), 'ViewerProfile.graphql');
const expectText = values.expect || '"viewer"';
const executablePath = values.chromium || process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const timeout = Number(values['timeout-ms'] || 30000);
const operationText = readFileSync(operationFile, 'utf8');
const operationName = (operationText.match(/^\s*(?:query|mutation)\s+([_A-Za-z][_0-9A-Za-z]*)/m) || [])[1] || '';
if (!token) console.warn('warning: no token given (TOLLGATE_TOKEN / --token); running anonymously');

const origin = new URL(base).origin;
const userDataDir = mkdtempSync(path.join(tmpdir(), 'tollgate-chromium-'));
const problems = [];
const cspViolations = [];
const foreignRequests = [];
const consoleErrors = [];
const failedResponses = [];
let browser;

async function editorValue(page, selector) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    return el && el.CodeMirror ? el.CodeMirror.getValue() : null;
  }, selector);
}

async function main() {
  // A persistent context is how Playwright passes a fresh --user-data-dir.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout,
    viewport: { width: 1400, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  browser = context;
  context.setDefaultTimeout(timeout);
  // Init scripts run through DevTools, so the page's CSP does not block this listener.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile || '?'}:${e.lineNumber || 0}`);
    });
  });
  const page = await context.newPage();
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error') consoleErrors.push(text);
    if (/Content[- ]Security[- ]Policy|Refused to/i.test(text)) cspViolations.push(`console: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) failedResponses.push(`${res.request().method()} ${res.url()} -> ${res.status()}`);
  });
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin) foreignRequests.push(url);
  });

  const response = await page.goto(endpoint, { waitUntil: 'load' });
  if (!response) fail(`no response for ${endpoint}`);
  const headers = response.headers();
  if (response.status() !== 200 || !(headers['content-type'] || '').includes('text/html')) {
    fail(`GET ${endpoint} as a browser gave HTTP ${response.status()} ${headers['content-type'] || ''}, not an HTML page`);
  }
  const csp = headers['content-security-policy'];
  if (!csp) problems.push('the GraphiQL page was served without a Content-Security-Policy header');
  else if (/unsafe-inline|unsafe-eval|\*/.test(csp.match(/script-src[^;]*/)?.[0] || 'script-src *')) {
    problems.push(`script-src is not strict: ${csp}`);
  }

  await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror');

  // The first screen without a token: a prompt, and nothing red anywhere.
  await page.waitForTimeout(1500);
  const first = await page.evaluate(() => ({
    prompt: !document.getElementById('tollgate-prompt').hidden
      ? document.getElementById('tollgate-prompt').textContent.replace(/\s+/g, ' ').trim() : '',
    pane: document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror?.getValue() || '',
    editor: document.querySelector('.graphiql-query-editor .CodeMirror')?.CodeMirror?.getValue() || '',
  }));
  if (!/paste a token/i.test(first.prompt)) problems.push(`no prompt to paste a token on the first screen: "${first.prompt}"`);
  if (/error/i.test(first.pane)) problems.push(`the result pane shows errors before any token: ${first.pane.slice(0, 200)}`);
  if (!/token/i.test(first.editor)) problems.push('the first editor text does not say how to get a token');
  for (const e of consoleErrors.splice(0)) problems.push(`console error without a token: ${e}`);
  for (const r of failedResponses.splice(0)) problems.push(`failed request without a token: ${r}`);

  // Pasting the token (an input event, no Enter, no blur) fetches the schema at once.
  const introspected = page.waitForResponse(
    (res) => res.request().method() === 'POST' && /IntrospectionQuery/.test(res.request().postData() || ''),
    { timeout: 10000 },
  ).catch(() => null);
  await page.fill('#tollgate-token', token);
  const schemaResponse = await introspected;
  if (!schemaResponse) problems.push('no introspection request after the token was pasted');
  else if (schemaResponse.status() !== 200) problems.push(`introspection after the token gave HTTP ${schemaResponse.status()}`);
  const promptAfter = await page.evaluate(() => document.getElementById('tollgate-prompt').hidden);
  if (!promptAfter) problems.push('the token prompt is still shown after a token was pasted');
  const stored = await page.evaluate(() => window.localStorage.getItem('tollgate.token') || '');
  if (stored !== token) problems.push('the token was not persisted in localStorage');

  // After a token change GraphiQL re-mounts its fetcher; wait until the editor is back.
  await page.waitForSelector('.graphiql-query-editor .CodeMirror');
  await page.evaluate((text) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(text);
  }, operationText);
  await page.click('.graphiql-execute-button');

  const deadline = Date.now() + timeout;
  let result = '';
  while (Date.now() < deadline) {
    result = (await editorValue(page, '.graphiql-response .CodeMirror')) || '';
    if (result.includes(expectText) || /"errors"\s*:/.test(result)) break;
    await page.waitForTimeout(100);
  }
  if (!result.includes(expectText)) {
    problems.push(`result pane lacks ${expectText}: ${result.replace(/\s+/g, ' ').slice(0, 400) || '(empty)'}`);
  }

  await page
    .waitForFunction((name) => document.getElementById('tollgate-cost')?.dataset.operation === name, operationName, { timeout: 5000 })
    .catch(() => {});
  const cost = await page.evaluate(() => {
    const el = document.getElementById('tollgate-cost');
    return { text: el.textContent, operation: el.dataset.operation, requested: el.dataset.requested, actual: el.dataset.actual };
  });
  if (cost.operation !== operationName || !/^\d+(\.\d+)?$/.test(cost.requested || '')) {
    problems.push(`cost not shown in the header bar for ${operationName}: "${cost.text}"`);
  }

  mkdirSync(path.dirname(path.resolve(screenshot)), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });

  // Opening a dialog makes the bundle inject its one <style> element: the CSP must allow it.
  const settings = page.locator('[aria-label="Open settings dialog"]');
  if (await settings.count()) {
    await settings.first().click();
    await page.waitForSelector('[role="dialog"]', { timeout: 5000 }).catch(() => problems.push('settings dialog did not open'));
    await page.keyboard.press('Escape');
    await page.waitForSelector('[role="dialog"]', { state: 'detached', timeout: 5000 }).catch(() => {});
  }

  const pageViolations = await page.evaluate(() => window.__cspViolations);
  cspViolations.push(...pageViolations);
  return cost;
}

let cost;
try {
  cost = await main();
} catch (err) {
  problems.push(`error: ${err.message.split('\n')[0]}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
for (const v of cspViolations) problems.push(`CSP violation: ${v}`);
for (const u of foreignRequests) problems.push(`request to another origin: ${u}`);
for (const e of consoleErrors) problems.push(`console error: ${e}`);
for (const r of failedResponses) problems.push(`failed request: ${r}`);
for (const p of problems) console.error(`  - ${p}`);
if (problems.length) {
  console.log(`graphiql: FAILED with ${problems.length} problem(s) at ${endpoint} (screenshot: ${screenshot})`);
  process.exit(1);
}
console.log(`graphiql: ok, ${operationName} ran at ${endpoint}; header bar "${cost.text}"; 0 CSP violations; screenshot ${screenshot}`);
