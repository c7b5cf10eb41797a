// Browser tests: the real `switchyard serve --demo` binary, Debian's Chromium driven by playwright-core.
// Env: SWITCHYARD_BIN, SWITCHYARD_NODE_MODULES (where playwright-core is), SWITCHYARD_SITE_DIR (built UI),
// SWITCHYARD_SCREENSHOTS (where pictures go). Run by e2e/test-all.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.SWITCHYARD_NODE_MODULES, 'noop.js'));
const { chromium } = require('playwright-core');
const shots = process.env.SWITCHYARD_SCREENSHOTS || tmpdir();
mkdirSync(shots, { recursive: true });

let server;
let base;
let demoKey;
let demoLogin;
let browser;
const WEBHOOK_SECRET = 'whsec_browser_test';

/// Posts a Stripe event signed as Stripe signs them.
async function stripeEvent(id, type, object) {
  const { createHmac } = await import('node:crypto');
  const body = JSON.stringify({ id, object: 'event', type, data: { object } });
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac('sha256', WEBHOOK_SECRET).update(`${t}.${body}`).digest('hex');
  return fetch(`${base}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${v1}` },
    body,
  });
}
let dbUrl;
let dataDir;

before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-e2e-'));
  dataDir = dir;
  dbUrl = `sqlite://${dir}/e2e.db`;
  server = spawn(process.env.SWITCHYARD_BIN, ['serve', '--demo'], {
    env: {
      ...process.env,
      DATABASE_URL: dbUrl,
      SWITCHYARD_ADDR: '127.0.0.1:0',
      SWITCHYARD_SECRET_KEY_FILE: `${dir}/secret.key`,
      SWITCHYARD_JOURNAL_DIR: `${dir}/journal`,
      // The Stripe fake signs with this; the test signs a payment of its own with it too.
      SWITCHYARD_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      SWITCHYARD_KEY_CACHE_TTL_MS: '200',
      // Balances are compared with alerts and top-up thresholds twice a second.
      SWITCHYARD_LOW_BALANCE_CHECK_MS: '500',
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60000);
    server.stdout.on('data', (d) => {
      out += d;
      const url = out.match(/Dashboard:\s+(\S+?)\/?\s/);
      const key = out.match(/Demo key:\s+(sk-sy-v1-[0-9a-f]+)/);
      const login = out.match(/Sign in:\s+\S+ as (\S+) with password (\S+)/);
      if (url && key && login) {
        base = url[1];
        demoKey = key[1];
        demoLogin = { email: login[1], password: login[2] };
        clearTimeout(timer);
        resolve();
      }
    });
    server.on('exit', (c) => reject(new Error(`server exited with ${c}:\n${out}`)));
  });
  browser = await chromium.launchPersistentContext(mkdtempSync(path.join(tmpdir(), 'sy-chromium-')), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.on('exit', r));
  }
});

function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  // Say which request failed, not only that one did.
  page.on('response', (r) => {
    if (r.status() >= 400 && r.status() !== 402) errors.push(`${r.status()} from ${r.url()}`);
  });
  return errors;
}

test('the home page is rendered on the server with the catalog and tenant prices', async () => {
  const res = await fetch(`${base}/`);
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /Demo Fast 1/);
  assert.match(html, /demo\/smart-1/);
  // $0.50 per M input plus the demo's 10 % markup.
  assert.match(html, /\$0\.55/);
  assert.match(html, /\$3\.30/);
  assert.match(html, /switchyard_bg\.wasm/);
});

test('the home page hydrates, and filtering the models works in the browser', async () => {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${base}/`);
  await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  assert.equal(await page.locator('tr.model-row').count(), 2);
  assert.match(await page.locator('tr.model-row').first().innerText(), /\$0\.55/);
  await page.screenshot({ path: path.join(shots, 'home.png'), fullPage: true });

  await page.fill('input.filter', 'smart');
  await page.waitForFunction(() => document.querySelectorAll('tr.model-row').length === 1);
  assert.match(await page.locator('tr.model-row').first().innerText(), /Demo Smart 1/);
  assert.match(await page.locator('.count').innerText(), /1 of 2 models/);

  await page.fill('input.filter', 'no-such-model');
  await page.waitForFunction(() => document.querySelectorAll('tr.model-row').length === 0);
  assert.match(await page.locator('.count').innerText(), /No model matches/);
  await page.screenshot({ path: path.join(shots, 'home-filtered.png') });
  assert.deepEqual(errors, []);
});

test('the sign-in link leads to its page', async () => {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${base}/`);
  await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  await page.click('header a.button:has-text("Sign in")');
  await page.waitForURL(/\/signin$/);
  assert.match(await page.locator('h1').innerText(), /Sign in/);
  await page.screenshot({ path: path.join(shots, 'signin.png') });
  assert.deepEqual(errors, []);
});

test('the demo key printed at start makes a first call, and credits drop by its cost', async () => {
  const headers = { Authorization: `Bearer ${demoKey}`, 'Content-Type': 'application/json' };
  const before = (await (await fetch(`${base}/api/v1/credits`, { headers })).json()).data.total_usage;
  const res = await fetch(`${base}/api/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: 'demo/fast-1', messages: [{ role: 'user', content: 'Hello' }] }),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.ok(body.usage.cost > 0);
  const after = (await (await fetch(`${base}/api/v1/credits`, { headers })).json()).data.total_usage;
  assert.equal(Math.round((after - before) * 1e9), Math.round(body.usage.cost * 1e9));
});

test('a newcomer signs up, sees the dashboard, signs out and back in', async () => {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  const email = `ada-${Date.now()}@example.com`;
  await page.goto(`${base}/signup`);
  await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  await page.fill('input[name=email]', email);
  // The rules are shown, and checked, before submitting.
  await page.fill('input[name=password]', 'short');
  assert.equal(await page.locator('.rules li.ok').count(), 3);
  await page.fill('input[name=password]', 'correct horse battery');
  assert.equal(await page.locator('.rules li.ok').count(), 4);
  await page.screenshot({ path: path.join(shots, 'signup.png') });
  await page.click('form button[type=submit]');
  await page.waitForURL(/\/dashboard$/);
  await page.waitForSelector('.card-value.org');
  assert.match(await page.locator('main').innerText(), new RegExp(`Signed in as\\s+${email.replace('.', '\\.')}`));
  assert.match(await page.locator('.card-value.org').innerText(), /\(personal\)/);
  assert.equal(await page.locator('.card-value.balance').innerText(), '$0.00');
  assert.match(await page.locator('header').innerText(), new RegExp(email.replace('.', '\\.')));
  await page.screenshot({ path: path.join(shots, 'dashboard.png') });

  // The session cookie is HttpOnly and SameSite=Lax.
  const cookie = (await browser.cookies(base)).find((c) => c.name === 'sy_session');
  assert.ok(cookie, 'a session cookie is set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');

  await page.click('header button:has-text("Sign out")');
  await page.waitForURL(`${base}/`);
  await page.waitForSelector('header a.button:has-text("Sign in")');
  await page.goto(`${base}/dashboard`);
  await page.waitForURL(/\/signin$/);

  await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', 'wrong horse battery');
  await page.click('form button[type=submit]');
  await page.waitForSelector('p.error');
  assert.match(await page.locator('p.error').innerText(), /Wrong email or password\./);
  await page.screenshot({ path: path.join(shots, 'signin-error.png') });
  await page.fill('input[name=password]', 'correct horse battery');
  await page.click('form button[type=submit]');
  await page.waitForURL(/\/dashboard$/);
  await page.waitForSelector('.card-value.org');

  // Signing up again with the same email is refused without saying more than needed.
  const other = await browser.newPage();
  await browser.clearCookies();
  await other.goto(`${base}/signup`);
  await other.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  await other.fill('input[name=email]', email);
  await other.fill('input[name=password]', 'another long password');
  await other.click('form button[type=submit]');
  await other.waitForSelector('p.error');
  assert.match(await other.locator('p.error').innerText(), /Could not create an account/);
  assert.deepEqual(errors, []);
});

test('a cross-site form cannot act on the dashboard', async () => {
  const res = await fetch(`${base}/_app/sign_in`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: 'http://evil.example' },
    body: 'email=a%40b.c&password=whatever12345',
  });
  assert.equal(res.status, 403);
  const same = await fetch(`${base}/_app/sign_in`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: base, Accept: 'application/json' },
    body: 'email=a%40b.c&password=whatever12345',
  });
  assert.notEqual(same.status, 403, 'the same site may post');
});

test('the demo owner signs in with the login printed at start and sees the demo credits', async () => {
  const page = await browser.newPage();
  await browser.clearCookies();
  await page.goto(`${base}/signin`);
  await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  await page.fill('input[name=email]', demoLogin.email);
  await page.fill('input[name=password]', demoLogin.password);
  await page.click('form button[type=submit]');
  await page.waitForURL(/\/dashboard$/);
  await page.waitForSelector('.card-value.org');
  assert.equal(await page.locator('.card-value.org').innerText(), 'Demo');
  assert.equal(await page.locator('.card-value.balance').innerText(), '$9.99');
  assert.match(await page.locator('.card-value.balance').getAttribute('title'), /^\$9\.9999/);
  await page.screenshot({ path: path.join(shots, 'dashboard-demo.png') });
});

test('keys are created, shown once, used, disabled and deleted in the browser', async () => {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  page.on('dialog', (d) => d.accept());
  await browser.clearCookies();
  await page.goto(`${base}/signin`);
  await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  await page.fill('input[name=email]', demoLogin.email);
  await page.fill('input[name=password]', demoLogin.password);
  await page.click('form button[type=submit]');
  await page.waitForURL(/\/dashboard$/);
  await page.click('a:has-text("Manage API keys")');
  await page.waitForURL(/\/keys$/);
  await page.waitForSelector('tr.key-row');

  // A bad field is named, and nothing is created.
  const rowsBefore = await page.locator('tr.key-row').count();
  await page.click('summary:has-text("Create a key")');
  await page.fill('input[name=name]', 'from the browser');
  await page.fill('input[name=limit_usd]', 'lots');
  await page.click('button:has-text("Create key")');
  await page.waitForSelector('.key-form p.error');
  assert.match(await page.locator('.key-form p.error').innerText(), /^Credit limit/);
  assert.equal(await page.locator('tr.key-row').count(), rowsBefore);

  await page.fill('input[name=limit_usd]', '2');
  await page.selectOption('select[name=limit_reset]', 'monthly');
  await page.fill('input[name=rpm]', '100');
  await page.click('button:has-text("Create key")');
  await page.waitForSelector('.secret-value');
  const secret = await page.locator('.secret-value').innerText();
  assert.match(secret, /^sk-sy-v1-[0-9a-f]{64}$/);
  assert.match(await page.locator('.secret').innerText(), /won't see it again/);
  await page.waitForSelector('tr.key-row[data-name="from the browser"]');
  const row = page.locator('tr.key-row[data-name="from the browser"]');
  assert.match(await row.innerText(), /resets monthly/);
  assert.match(await row.innerText(), /\$2\.00 of \$2\.00/);
  await page.screenshot({ path: path.join(shots, 'keys-created.png'), fullPage: true });

  // The key works; its usage shows on the page.
  const call = () => fetch(`${base}/api/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'demo/fast-1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
  });
  assert.equal((await call()).status, 200);
  await page.reload();
  await page.waitForSelector('tr.key-row[data-name="from the browser"]');
  assert.notEqual(await row.locator('.usage').innerText(), '$0.00');
  assert.doesNotMatch(await row.locator('.usage-periods').innerText(), /today \$0\.00$/m);

  // Disabled keys are refused by the gateway; enabled again, they work.
  await row.locator('button:has-text("Disable")').click();
  await page.waitForSelector('tr.key-row[data-name="from the browser"] .status.disabled');
  await new Promise((r) => setTimeout(r, 400));
  assert.equal((await call()).status, 401);
  await row.locator('button:has-text("Enable")').click();
  await page.waitForSelector('tr.key-row[data-name="from the browser"] .status.active');
  await new Promise((r) => setTimeout(r, 400));
  assert.equal((await call()).status, 200);

  // Deleting asks first, then the key is gone everywhere.
  await row.locator('button:has-text("Delete")').click();
  await page.waitForSelector('tr.key-row[data-name="from the browser"]', { state: 'detached' });
  await new Promise((r) => setTimeout(r, 400));
  assert.equal((await call()).status, 401);

  // Owners make management keys for scripts; the secret is shown once and works on /api/v1/keys.
  await page.fill('.management input[name=name]', 'provisioning');
  await page.click('button:has-text("Create management key")');
  await page.waitForSelector('.management .secret-value');
  const mgmt = await page.locator('.management .secret-value').innerText();
  await page.waitForSelector('tr.management-row[data-name="provisioning"]');
  const listed = await fetch(`${base}/api/v1/keys`, { headers: { Authorization: `Bearer ${mgmt}` } });
  assert.equal(listed.status, 200);
  assert.ok((await listed.json()).data.some((k) => k.name === 'demo'));
  await page.screenshot({ path: path.join(shots, 'keys.png'), fullPage: true });
  await page.locator('tr.management-row[data-name="provisioning"] button:has-text("Delete")').click();
  await page.waitForSelector('tr.management-row[data-name="provisioning"]', { state: 'detached' });
  await new Promise((r) => setTimeout(r, 400));
  assert.equal((await fetch(`${base}/api/v1/keys`, { headers: { Authorization: `Bearer ${mgmt}` } })).status, 401);
  assert.deepEqual(errors, []);
});

// ---- Accounts, email links, organisations, invitations, admin ----

/// A second browser with its own fresh profile (another person at another computer).
async function otherBrowser() {
  return chromium.launchPersistentContext(mkdtempSync(path.join(tmpdir(), 'sy-chromium-')), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

async function signIn(ctx, email, password) {
  const page = await ctx.newPage();
  await page.goto(`${base}/signin`);
  await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('form button[type=submit]');
  await page.waitForURL(/\/dashboard$/);
  return page;
}

/// The newest link to `kind` (verify, reset, invite) emailed to `to`, read from the admin's outbox page.
async function linkFromOutbox(adminPage, to, kind) {
  await adminPage.goto(`${base}/admin#outbox`);
  await adminPage.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
  const mail = adminPage.locator(`li.mail[data-to="${to}"]`).filter({ has: adminPage.locator(`a[href*="/${kind}?token="]`) }).first();
  await mail.locator('summary').click();
  return mail.locator(`a[href*="/${kind}?token="]`).first().getAttribute('href');
}

function grantCredits(org, usd) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.env.SWITCHYARD_BIN, ['credits', 'grant', '--org', org, '--usd', usd], {
      env: { ...process.env, DATABASE_URL: dbUrl, RUST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    p.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`credits grant exited with ${c}`))));
  });
}

test('sign up, verify from the outbox, create a key, call with it, see it used, disable it', async () => {
  const admin = await otherBrowser();
  const ada = await otherBrowser();
  try {
    const adminPage = await signIn(admin, demoLogin.email, demoLogin.password);
    const email = `verify-${Date.now()}@example.com`;
    const page = await ada.newPage();
    const errors = watchErrors(page);
    page.on('dialog', (d) => d.accept());
    await page.goto(`${base}/signup`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.fill('input[name=email]', email);
    await page.fill('input[name=password]', 'correct horse battery');
    await page.click('form button[type=submit]');
    await page.waitForURL(/\/dashboard$/);
    // Unconfirmed: the banner says so, and keys cannot be made yet.
    await page.waitForSelector('.banner');
    assert.match(await page.locator('.banner').innerText(), /Confirm your email address/);
    await page.screenshot({ path: path.join(shots, 'dashboard-unverified.png') });
    await page.goto(`${base}/keys`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.fill('input[name=name]', 'too early');
    await page.click('button:has-text("Create key")');
    await page.waitForSelector('.key-form p.error');
    assert.match(await page.locator('.key-form p.error').innerText(), /Confirm your email address first/);

    // The admin reads the verification email in the outbox; its link confirms the address.
    const link = await linkFromOutbox(adminPage, email, 'verify');
    assert.ok(link.startsWith(`${base}/verify?token=`), link);
    await adminPage.screenshot({ path: path.join(shots, 'admin-outbox.png'), fullPage: true });
    await page.goto(link);
    await page.waitForSelector('p.notice');
    assert.match(await page.locator('p.notice').innerText(), /is confirmed/);
    await page.screenshot({ path: path.join(shots, 'verify.png') });
    await page.waitForSelector('.banner', { state: 'detached' });
    // A second use of the link is refused.
    await page.goto(link);
    await page.waitForSelector('p.error');
    assert.match(await page.locator('p.error').innerText(), /invalid, already used or expired/);

    // Credits for the new organisation (buying them is the billing pages' job; the operator grants).
    await grantCredits(`${email} (personal)`, '5');
    await page.goto(`${base}/keys`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.fill('input[name=name]', 'my app');
    await page.click('button:has-text("Create key")');
    await page.waitForSelector('.secret-value');
    const secret = await page.locator('.secret-value').innerText();
    const row = page.locator('tr.key-row[data-name="my app"]');
    assert.match(await row.innerText(), /never/);
    const call = () => fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'demo/fast-1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
    });
    assert.equal((await call()).status, 200);
    await page.reload();
    await page.waitForSelector('tr.key-row[data-name="my app"]');
    assert.match(await row.locator('td').nth(2).innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    assert.notEqual(await row.locator('.usage').innerText(), '$0.00');

    // Edit the key's limits on the page: the gateway applies them.
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await row.locator('button:has-text("Edit")').click();
    await page.waitForSelector('tr.edit-row');
    await page.fill('tr.edit-row input[name=models]', 'demo/smart-1');
    await page.fill('tr.edit-row input[name=rpm]', '30');
    await page.screenshot({ path: path.join(shots, 'keys-edit.png'), fullPage: true });
    await page.click('tr.edit-row button:has-text("Save changes")');
    await page.waitForSelector('tr.edit-row', { state: 'detached' });
    await page.waitForSelector('tr.key-row[data-name="my app"]:has-text("only demo/smart-1")');
    assert.match(await row.innerText(), /30\/min/);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await call()).status, 403, 'demo/fast-1 is no longer allowed');

    // The key's own routing (over the organisation's): never the dev upstream leaves demo/smart-1
    // nothing to run on, and the gateway says which preference removed it.
    await row.locator('button:has-text("Edit")').click();
    await page.waitForSelector('tr.edit-row fieldset.key-routing');
    await page.fill('tr.edit-row input[name=ignore]', 'Switchyard Dev Upstream');
    await page.screenshot({ path: path.join(shots, 'keys-edit-routing.png'), fullPage: true });
    await page.click('tr.edit-row button:has-text("Save changes")');
    await page.waitForSelector('tr.edit-row', { state: 'detached' });
    await page.waitForSelector('tr.key-row[data-name="my app"]:has-text("routing: never dev")');
    const smart = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'demo/smart-1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
    });
    assert.equal(smart.status, 503);
    assert.match((await smart.json()).error.message, /ignore/);

    await row.locator('button:has-text("Disable")').click();
    await page.waitForSelector('tr.key-row[data-name="my app"] .status.disabled');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await call()).status, 401);
    assert.deepEqual(errors, []);
  } finally {
    await admin.close();
    await ada.close();
  }
});

test('a forgotten password is reset by an emailed link', async () => {
  const admin = await otherBrowser();
  const user = await otherBrowser();
  try {
    const adminPage = await signIn(admin, demoLogin.email, demoLogin.password);
    const email = `forgetful-${Date.now()}@example.com`;
    const page = await user.newPage();
    const errors = watchErrors(page);
    await page.goto(`${base}/signup`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.fill('input[name=email]', email);
    await page.fill('input[name=password]', 'correct horse battery');
    await page.click('form button[type=submit]');
    await page.waitForURL(/\/dashboard$/);
    await page.click('header button:has-text("Sign out")');
    await page.waitForSelector('header a.button:has-text("Sign in")');

    await page.goto(`${base}/signin`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.click('a:has-text("Forgot your password?")');
    await page.waitForURL(/\/reset$/);
    await page.fill('input[name=email]', email);
    await page.click('button:has-text("Send the link")');
    await page.waitForSelector('p.notice');
    assert.match(await page.locator('p.notice').innerText(), /a link to choose a new password is on its way/);
    await page.screenshot({ path: path.join(shots, 'reset-request.png') });

    const link = await linkFromOutbox(adminPage, email, 'reset');
    await page.goto(link);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.fill('input[name=password]', 'short');
    await page.click('button:has-text("Set the password")');
    await page.waitForSelector('p.error');
    assert.match(await page.locator('p.error').innerText(), /at least 10 characters/);
    await page.screenshot({ path: path.join(shots, 'reset-choose.png') });
    await page.fill('input[name=password]', 'a brand new passphrase');
    await page.click('button:has-text("Set the password")');
    await page.waitForURL(/\/dashboard$/);
    await page.waitForSelector('.card-value.org');
    // The link proved the address: no banner.
    assert.equal(await page.locator('.banner').count(), 0);
    assert.deepEqual(errors, []);
  } finally {
    await admin.close();
    await user.close();
  }
});

test('an owner invites a teammate who signs up from the link and sees only their own keys', async () => {
  const owner = await otherBrowser();
  const bea = await otherBrowser();
  try {
    const page = await signIn(owner, demoLogin.email, demoLogin.password);
    const errors = watchErrors(page);
    page.on('dialog', (d) => d.accept());
    await page.click('header a:has-text("Organisation")');
    await page.waitForURL(/\/org$/);
    await page.waitForSelector('tr.member-row');
    assert.equal(await page.locator('h1').innerText(), 'Demo');
    const email = `bea-${Date.now()}@example.com`;
    await page.fill('input[type=email][name=email]', email);
    await page.click('button:has-text("Send invitation")');
    await page.waitForSelector(`tr.invite-row[data-email="${email}"]`);
    assert.match(await page.locator('p.notice').first().innerText(), /Invitation sent/);

    // Routing defaults: an unknown provider is refused by name; a known one is saved and summarised.
    const routing = page.locator('section.routing-defaults');
    await routing.locator('input[name=order]').fill('nowhere');
    await routing.locator('button:has-text("Save routing")').click();
    await routing.locator('p.error').waitFor();
    assert.match(await routing.locator('p.error').innerText(), /no provider called "nowhere"; the providers are .*dev/);
    await routing.locator('input[name=order]').fill('dev');
    await routing.locator('select[name=sort]').selectOption('price');
    await routing.locator('button:has-text("Save routing")').click();
    await routing.locator('p.notice').waitFor();
    await page.waitForFunction(() => document.querySelector('section.routing-defaults p.muted')?.innerText.includes('dev first'));
    assert.match(await routing.locator('p.muted').first().innerText(), /dev first; cheapest first/);
    await page.screenshot({ path: path.join(shots, 'org.png'), fullPage: true });

    const link = await linkFromOutbox(page, email, 'invite');
    const bp = await bea.newPage();
    const beaErrors = watchErrors(bp);
    await bp.goto(link);
    await bp.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    assert.equal(await bp.locator('h1').innerText(), 'Join Demo');
    await bp.screenshot({ path: path.join(shots, 'invite.png') });
    await bp.fill('input[name=password]', 'correct horse battery');
    await bp.click('button:has-text("Create account and join")');
    await bp.waitForURL(/\/keys$/);
    await bp.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    // Bea works in Demo now, as a member: the demo owner's keys are not hers to see.
    assert.equal(await bp.locator('#org-switch option:checked').innerText(), 'Demo');
    await bp.waitForSelector('p.empty');
    assert.equal(await bp.locator('tr.key-row').count(), 0);
    await bp.fill('input[name=name]', "bea's key");
    await bp.click('button:has-text("Create key")');
    await bp.waitForSelector('.secret-value');
    await bp.waitForSelector('tr.key-row');
    assert.deepEqual(await bp.locator('tr.key-row').evaluateAll((rows) => rows.map((r) => r.dataset.name)), ["bea's key"]);

    // The switcher moves her to her personal organisation, where the key is not.
    await bp.selectOption('#org-switch', { label: `${email} (personal)` });
    await bp.waitForFunction(() => document.querySelector('#org-switch option:checked')?.textContent.includes('(personal)'));
    await bp.waitForSelector('p.empty');
    assert.equal(await bp.locator('tr.key-row').count(), 0);

    // The owner sees her as a member and her key among all of Demo's.
    await page.goto(`${base}/org`);
    await page.waitForSelector(`tr.member-row[data-email="${email}"]`);
    assert.equal(await page.locator(`tr.invite-row[data-email="${email}"]`).count(), 0);
    await page.goto(`${base}/keys`);
    await page.waitForSelector(`tr.key-row[data-name="bea's key"]`);

    // Made admin, she sees every key of Demo.
    await page.goto(`${base}/org`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.selectOption(`tr.member-row[data-email="${email}"] select.role-select`, 'admin');
    await page.waitForSelector('p.notice:has-text("Role changed")');
    await bp.selectOption('#org-switch', { label: 'Demo' });
    await bp.waitForFunction(() => document.querySelector('#org-switch option:checked')?.textContent === 'Demo');
    await bp.waitForSelector('tr.key-row');
    assert.ok(await bp.locator('tr.key-row').count() > 1);
    await bp.screenshot({ path: path.join(shots, 'keys-as-admin.png'), fullPage: true });
    assert.deepEqual(errors, []);
    assert.deepEqual(beaErrors, []);
  } finally {
    await owner.close();
    await bea.close();
  }
});

test('an owner saves a card, turns on automatic top-up, sees a decline, replaces the card and is topped up', async () => {
  const ctx = await otherBrowser();
  try {
    const page = await signIn(ctx, demoLogin.email, demoLogin.password);
    const errors = watchErrors(page);
    const cents = (t) => Math.floor(parseFloat(t.replace(/[^0-9.]/g, '')) * 100 + 1e-6);
    const reload = async () => {
      await page.goto(`${base}/billing`);
      await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    };
    const buySavingCard = async (card) => {
      await page.click('button.preset:has-text("$10.00")');
      await page.check('.buy-form input[name=save_card]');
      await page.click('button:has-text("Continue to payment")');
      await page.waitForSelector('#pay', { timeout: 20000 });
      await page.selectOption('#card', card);
      await page.click('#pay');
      await page.waitForSelector('p.notice.paid', { timeout: 20000 });
      await reload();
      await page.waitForSelector(`.saved-card .card-name:has-text("Visa •••• ${card}")`);
    };
    await reload();
    // Receipts are made out to the billing name.
    await page.fill('.billing-name-panel input[name=name]', 'Demo Labs Inc.');
    await page.click('.billing-name-panel button:has-text("Save")');
    await page.waitForSelector('.billing-name-panel p.notice:has-text("Demo Labs Inc.")');
    // No card yet: the top-up switch waits for one.
    await page.waitForSelector('.topup-panel input[name=enabled][disabled]');
    // Buy $10 keeping the card: 0341 pays now, but declines later charges.
    await buySavingCard('0341');
    const before = cents(await page.locator('.card-value.balance').innerText());
    // Turn it on with a threshold above the balance: the next pass (twice a second here) charges.
    await page.check('.topup-panel input[name=enabled]');
    await page.fill('.topup-panel input[name=below]', '100000');
    await page.fill('.topup-panel input[name=add]', '20');
    await page.click('.topup-panel button:has-text("Save")');
    await page.waitForSelector('.topup-panel p.notice:has-text("Visa •••• 0341 is charged $21.10")');
    for (let i = 0; i < 40 && !(await page.locator('.topup-status.trouble').count()); i++) {
      await page.waitForTimeout(500);
      await reload();
    }
    assert.match(await page.locator('.topup-status.trouble').innerText(), /^The last charge failed: Your card was declined\. Next try after .* \(try 2 of 4\)\.$/);
    assert.equal(cents(await page.locator('.card-value.balance').innerText()), before);
    await page.screenshot({ path: path.join(shots, 'billing-topup-declined.png'), fullPage: true });
    // A new card clears the decline; the next pass charges it.
    await buySavingCard('4242');
    let status = '';
    for (let i = 0; i < 40 && !status.startsWith('On. Last top-up'); i++) {
      await page.waitForTimeout(500);
      await reload();
      status = await page.locator('.topup-status').innerText();
    }
    assert.match(status, /^On\. Last top-up: \$20\.00 on .*Next: \$20\.00 when the balance falls below \$100000\.00\.$/);
    assert.equal(cents(await page.locator('.card-value.balance').innerText()), before + 1000 + 2000);
    const row = page.locator('tr.history-row.purchase').first();
    assert.match(await row.innerText(), /automatic top-up/);
    await page.screenshot({ path: path.join(shots, 'billing-topup.png'), fullPage: true });
    // Its receipt names the billing name and the saved card.
    await row.locator('a:has-text("Receipt")').click();
    await page.waitForURL(/\/billing\/receipts\/ord_/);
    const receipt = await page.locator('main').innerText();
    for (const s of ['Demo Labs Inc.', 'Automatic top-up', 'Saved card, charged automatically', '$20.00', '$1.10', '$21.10']) {
      assert.ok(receipt.includes(s), `${s} in the receipt`);
    }
    await page.screenshot({ path: path.join(shots, 'receipt-topup.png') });
    // Turning it off ends it.
    await reload();
    await page.uncheck('.topup-panel input[name=enabled]');
    await page.click('.topup-panel button:has-text("Save")');
    await page.waitForSelector('.topup-panel p.notice:has-text("utomatic top-up is off")');
    await page.waitForSelector('.topup-status:text-is("Off.")');
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
  }
});

test('the admin area lists users and organisations; pages work at phone width', async () => {
  const ctx = await otherBrowser();
  try {
    const page = await signIn(ctx, demoLogin.email, demoLogin.password);
    const errors = watchErrors(page);
    // A payment in euros credits nothing and waits for a person's eye.
    const refused = await stripeEvent('evt_browser_eur', 'checkout.session.completed', {
      id: 'cs_browser_eur', object: 'checkout.session', client_reference_id: 'ord_unknown', payment_status: 'paid',
      amount_total: 2110, payment_intent: 'pi_browser_eur', currency: 'eur',
    });
    assert.equal(refused.status, 200);
    assert.match((await refused.json()).outcome, /^refused: currency eur/);
    await page.click('header a:has-text("Admin")');
    await page.waitForURL(/\/admin$/);
    await page.waitForSelector('tr.admin-user');
    assert.ok(await page.locator('tr.admin-user').count() >= 2);
    assert.match(await page.locator('.admin-orgs').innerText(), /Demo/);
    const events = await page.locator('#payment-events').innerText();
    assert.match(events, /evt_browser_eur[\s\S]*refused: currency eur/);
    await page.screenshot({ path: path.join(shots, 'admin.png'), fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    for (const p of ['dashboard', 'activity', 'keys', 'org', 'admin', 'admin/catalog', 'admin/analytics', 'billing', 'models', 'models/demo/fast-1']) {
      await page.goto(`${base}/${p}`);
      await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
      await page.waitForSelector('main h1');
      // Nothing wider than the screen but the tables' own scrolling boxes.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) {
        const wide = await page.evaluate(() => [...document.querySelectorAll('main *')]
          .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap'))
          .slice(0, 3).map((e) => `${e.tagName}.${e.className} ${e.textContent.slice(0, 40)} ${e.getBoundingClientRect().right}`).join(', '));
        assert.fail(`${p} is ${overflow}px wider than a phone (${wide})`);
      }
      assert.ok(overflow <= 1, `${p} is ${overflow}px wider than a phone`);
      await page.screenshot({ path: path.join(shots, `phone-${p.replaceAll("/", "-")}.png`), fullPage: true });
    }
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
  }
});

test('an owner buys credits on the Stripe fake: fee shown first, credits only after the webhook', async () => {
  const ctx = await otherBrowser();
  try {
    const page = await signIn(ctx, demoLogin.email, demoLogin.password);
    const errors = watchErrors(page);
    const before = await page.locator('.card-value.balance').innerText();
    await page.click('header a:has-text("Billing")');
    await page.waitForURL(/\/billing$/);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.waitForSelector('.buy-form');
    // The fee is shown before paying: 5.5 % with a $0.80 minimum.
    await page.click('button.preset:has-text("$10.00")');
    assert.equal(await page.locator('.quote .fee').innerText(), '$0.80');
    await page.click('button.preset:has-text("$25.00")');
    assert.equal(await page.locator('.quote .fee').innerText(), '$1.38');
    assert.equal(await page.locator('.quote .total-value').innerText(), '$26.38');
    await page.fill('input[name=amount]', '1');
    await page.waitForSelector('.buy-form button[type=submit][disabled]');
    await page.fill('input[name=amount]', '25');
    await page.screenshot({ path: path.join(shots, 'billing.png'), fullPage: true });
    await page.click('button:has-text("Continue to payment")');

    // Stripe's hosted page (the local fake): cancel first, then pay.
    await page.waitForSelector('#pay', { timeout: 20000 });
    assert.equal(await page.locator('#amount').innerText(), '$26.38');
    await page.screenshot({ path: path.join(shots, 'checkout-fake.png') });
    await page.click('#cancel');
    await page.waitForURL(/\/billing\?canceled=/);
    await page.waitForSelector('p.notice:has-text("nothing was charged")');
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.click('button.preset:has-text("$25.00")');
    await page.click('button:has-text("Continue to payment")');
    await page.waitForSelector('#pay', { timeout: 20000 });
    await page.click('#pay');
    await page.waitForURL(/\/billing\/success\?order=ord_/);
    await page.waitForSelector('p.notice.paid', { timeout: 20000 });
    assert.match(await page.locator('p.notice.paid').innerText(), /\$25\.00 of credits added/);
    const cents = (t) => Math.floor(parseFloat(t.replace(/[^0-9.]/g, '')) * 100 + 1e-6);
    assert.equal(cents(await page.locator('.card-value.balance').innerText()), cents(before) + 2500);
    await page.screenshot({ path: path.join(shots, 'purchase-done.png') });
    // The printable receipt.
    await page.click('a:has-text("Receipt")');
    await page.waitForURL(/\/billing\/receipts\/ord_/);
    const receipt = await page.locator('main').innerText();
    for (const s of ['$25.00', '$1.38', '$26.38', 'Demo', 'Payment received']) assert.ok(receipt.includes(s), `${s} in the receipt`);
    await page.screenshot({ path: path.join(shots, 'receipt.png') });
    await page.goBack();

    // The history shows the purchase, and its running balance ends at the balance.
    await page.goto(`${base}/billing`);
    await page.waitForSelector('tr.history-row.purchase');
    const top = page.locator('tr.history-row').first();
    assert.match(await top.innerText(), /Credits bought by card/);
    assert.equal(cents(await top.locator('td').nth(3).innerText()), cents(before) + 2500);
    await page.screenshot({ path: path.join(shots, 'billing-history.png'), fullPage: true });

    // An admin makes a promo code; the organisation redeems it once.
    await page.goto(`${base}/admin#promos`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.fill('.promo-form input[name=code]', 'BROWSER5');
    await page.fill('.promo-form input[name=amount_usd]', '5');
    await page.click('button:has-text("Create code")');
    await page.waitForSelector('tr.promo-row[data-code="BROWSER5"]');
    await page.goto(`${base}/billing`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.fill('.redeem-panel input[name=code]', 'browser5');
    await page.click('button:has-text("Redeem")');
    await page.waitForSelector('.redeem-panel p.notice');
    assert.match(await page.locator('.redeem-panel p.notice').innerText(), /\$5 of credits added/);
    await page.waitForSelector('tr.history-row.grant:has-text("promo code BROWSER5")');
    await page.click('button:has-text("Redeem")');
    await page.waitForSelector('.redeem-panel p.error');
    assert.match(await page.locator('.redeem-panel p.error').innerText(), /already/);
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
  }
});

/// A free local port (the OS picks it; closed again before use).
async function freePort() {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test('an admin adds a provider, imports two of its models, prices them, and a tenant pays the new price', async () => {
  // A second OpenAI-compatible upstream (the same fake the demo uses), with its own key.
  const port = await freePort();
  const upstreamKey = 'sk-e2e-upstream-k3y9';
  const backupKey = 'sk-e2e-backup-b4ck';
  const upstream = spawn(process.env.SWITCHYARD_BIN, ['dev-upstream', '--addr', `127.0.0.1:${port}`, '--api-key', upstreamKey, '--api-key', backupKey],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  const ctx = await otherBrowser();
  try {
    for (let i = 0; i < 50; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${upstreamKey}` } }).catch(() => null);
      if (r?.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const page = await signIn(ctx, demoLogin.email, demoLogin.password);
    const errors = watchErrors(page);
    await page.goto(`${base}/admin`);
    await page.click('nav.admin-tabs a:has-text("Catalog")');
    await page.waitForURL(/\/admin\/catalog$/);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.waitForSelector('tr.provider-row[data-slug="dev"]');

    // Add the provider; its key is never shown again, only its last four characters.
    await page.click('details.add-provider > summary');
    const form = page.locator('details.add-provider form');
    await form.locator('input[name=slug]').fill('e2e-upstream');
    await form.locator('input[name=name]').fill('E2E Upstream');
    await form.locator('input[name=base_url]').fill(`http://127.0.0.1:${port}/v1`);
    await form.locator('input[name=api_key]').fill(upstreamKey);
    await form.locator('input[name=data_policy]').fill('Runs on our own machines; keeps nothing.');
    await form.locator('button[type=submit]').click();
    await page.waitForSelector('tr.provider-row[data-slug="e2e-upstream"]');
    const row = page.locator('tr.provider-row[data-slug="e2e-upstream"]');
    assert.match(await row.innerText(), /••••k3y9/);
    assert.ok(!(await page.content()).includes(upstreamKey), 'the key is not on the page');

    // A second key in the provider's pool, with twice the share of requests.
    await page.click('details.edit-provider[data-slug="e2e-upstream"] > summary');
    const pool = page.locator('details.edit-provider[data-slug="e2e-upstream"] .key-pool');
    await pool.locator('.add-key-form input[name=label]').fill('backup');
    await pool.locator('.add-key-form input[name=api_key]').fill(backupKey);
    await pool.locator('.add-key-form input[name=weight]').fill('2');
    await pool.locator('.add-key-form button[type=submit]').click();
    await page.waitForSelector('#providers p.notice:has-text("Key backup added to e2e-upstream")');
    assert.equal(await pool.locator('.add-key-form input[name=api_key]').inputValue(), '', 'the form is emptied once the key is saved');
    await page.waitForFunction(() => document.querySelector('tr.provider-row[data-slug="e2e-upstream"] td.keys')?.innerText.includes('backup'));
    assert.match(await row.locator('td.keys').innerText(), /backup ••••b4ck × 2/);
    assert.ok(!(await page.content()).includes(backupKey), 'the new key is not on the page');
    const panelOpen = () => page.locator('details.edit-provider[data-slug="e2e-upstream"]').evaluate((d) => d.open);
    assert.ok(await panelOpen(), 'the panel stays open when the page is read again');
    await pool.locator('h3').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(shots, 'admin-catalog-keys.png'), fullPage: false });

    // The same upstream also speaks Anthropic's protocol: a provider of that kind lists its models.
    // (Added while the other provider's key panel is open: the page re-renders around it.)
    if (!(await page.locator('details.add-provider').evaluate((d) => d.open))) await page.click('details.add-provider > summary');
    await form.locator('input[name=slug]').fill('e2e-claude');
    await form.locator('input[name=name]').fill('E2E Claude');
    await form.locator('select[name=kind]').selectOption('anthropic');
    await form.locator('input[name=base_url]').fill(`http://127.0.0.1:${port}/v1`);
    await form.locator('input[name=api_key]').fill(upstreamKey);
    await form.locator('button[type=submit]').click();
    const claudeRow = page.locator('tr.provider-row[data-slug="e2e-claude"]');
    await claudeRow.waitFor();
    await claudeRow.locator('button:has-text("Test connection")').click();
    await page.waitForFunction(() => /E2E Claude answered in \d+ ms .* listing 2 models/.test(document.querySelector('.test-result')?.innerText || ''));
    assert.ok(await panelOpen(), 'a provider inserted before it leaves the open panel open');

    // Test the connection, then import two of the models it lists.
    await row.locator('button:has-text("Test connection")').click();
    // (The Claude provider's result is still on the page until this one replaces it.)
    await page.waitForFunction(() => (document.querySelector('.test-result')?.innerText || '').includes('E2E Upstream answered'));
    const tested = await page.locator('.test-result').innerText();
    assert.match(tested, /key backup: E2E Upstream answered in \d+ ms .* listing 2 models/i);
    assert.match(tested, /key default: E2E Upstream answered in \d+ ms .* listing 2 models/);
    await row.locator('button:has-text("Import models")').click();
    await page.waitForSelector('.import-list h3:has-text("Models E2E Upstream offers")');
    await page.check('.import-list input[value="fast-1"]');
    await page.check('.import-list input[value="smart-1"]');
    await page.screenshot({ path: path.join(shots, 'admin-catalog-import.png'), fullPage: true });
    await page.click('.import-list button:has-text("Add selected")');
    await page.waitForSelector('p.notice:has-text("added e2e-upstream/fast-1, e2e-upstream/smart-1")');
    // The list is read again: both now show as in the catalog.
    await page.waitForSelector('.import-list li:has-text("smart-1") .status:has-text("in the catalog")');

    // Price them and turn them on; then a 25 % default markup.
    const priceEndpoint = async (slug, input, output) => {
      const card = page.locator(`article.model-admin[data-slug="${slug}"]`);
      await card.locator('details.edit-endpoint[data-provider="E2E Upstream"] > summary').click();
      const f = card.locator('details.edit-endpoint[data-provider="E2E Upstream"] form');
      await f.locator('input[name=cost_input]').fill(input);
      await f.locator('input[name=cost_output]').fill(output);
      await f.locator('input[name=enabled]').check();
      await f.locator('button[type=submit]').click();
      await page.waitForSelector(`#models p.notice:has-text("Endpoint of ${slug} saved")`);
    };
    await priceEndpoint('e2e-upstream/smart-1', '2', '4');
    await priceEndpoint('e2e-upstream/fast-1', '1', '1');
    await page.fill('.markup-panel input[name=percent]', '25');
    await page.click('.markup-panel button:has-text("Save")');
    await page.waitForSelector('.markup-panel p.notice:has-text("default markup is 25 %")');
    const smart = page.locator('article.model-admin[data-slug="e2e-upstream/smart-1"] tr.endpoint-row');
    await page.waitForFunction(() => document.querySelector('article.model-admin[data-slug="e2e-upstream/smart-1"] tr.endpoint-row td.sale')?.innerText.includes('$2.50 / $5.00'));
    assert.match(await smart.locator('td.margin').innerText(), /^20\.00 %$/);
    assert.match(await smart.innerText(), /\$2\.00 \/ \$4\.00/);
    await page.screenshot({ path: path.join(shots, 'admin-catalog.png'), fullPage: true });

    // A tenant's call is charged the new price: cost x 1.25, rounded up once to a nano-dollar.
    const r = await fetch(`${base}/api/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${demoKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'e2e-upstream/smart-1', messages: [{ role: 'user', content: 'Price check, please.' }] }),
    });
    assert.equal(r.status, 200);
    const v = await r.json();
    const { prompt_tokens: p, completion_tokens: c, cost } = v.usage;
    const nanos = BigInt(Math.round(cost * 1e9));
    const expected = ((BigInt(p) * 2000n + BigInt(c) * 4000n) * 125n + 99n) / 100n;
    assert.equal(nanos, expected, `cost ${cost} for ${p}+${c} tokens`);

    // Every change is in the audit log, with who made it.
    await page.goto(`${base}/admin/catalog#audit`);
    await page.waitForSelector('tr.audit-row');
    const audit = await page.locator('.audit-table').innerText();
    for (const s of ['set default markup', 'edit endpoint', 'import model', 'add provider', 'add key', demoLogin.email]) {
      assert.ok(audit.includes(s), `${s} in the audit log`);
    }
    assert.ok(!audit.includes(upstreamKey) && !audit.includes(backupKey), 'no key is in the audit log');
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
    upstream.kill('SIGTERM');
  }
});

test('an admin previews and applies the starter catalog; a visitor filters the public models and copies a request', async () => {
  const port = await freePort();
  const key = 'sk-e2e-openai-0p3n';
  const upstream = spawn(process.env.SWITCHYARD_BIN, ['dev-upstream', '--addr', `127.0.0.1:${port}`, '--api-key', key],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  const ctx = await otherBrowser();
  const visitor = await otherBrowser();
  try {
    for (let i = 0; i < 50; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).catch(() => null);
      if (r?.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const page = await signIn(ctx, demoLogin.email, demoLogin.password);
    const errors = watchErrors(page);
    await page.goto(`${base}/admin/catalog`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    // A provider called `openai` (here the fake upstream), so the starter's openai/* models map to it.
    await page.click('details.add-provider > summary');
    const form = page.locator('details.add-provider form');
    await form.locator('input[name=slug]').fill('openai');
    await form.locator('input[name=name]').fill('OpenAI');
    await form.locator('input[name=base_url]').fill(`http://127.0.0.1:${port}/v1`);
    await form.locator('input[name=api_key]').fill(key);
    await form.locator('button[type=submit]').click();
    await page.waitForSelector('tr.provider-row[data-slug="openai"]');

    // Preview the starter catalog: new models listed, others skipped with the reason; nothing changes yet.
    await page.click('#import-catalog button:has-text("Preview changes")');
    await page.waitForSelector('.import-diff');
    const diff = await page.locator('.import-diff').innerText();
    assert.match(diff, /7 new · 0 changed · 0 removed/);
    assert.match(diff, /openai\/gpt-4o-mini/);
    assert.match(diff, /anthropic\/claude-sonnet-4 no provider `anthropic` in the catalog/);
    const before = await (await fetch(`${base}/api/v1/models`)).json();
    assert.ok(!before.data.some((m) => m.id === 'openai/gpt-4o-mini'), 'a preview changes nothing');
    await page.locator('.import-diff').screenshot({ path: path.join(shots, 'admin-catalog-import-diff.png') });
    await page.click('.import-diff button:has-text("Apply these changes")');
    await page.waitForSelector('#import-catalog p.notice:has-text("imported: 7 new, 0 changed, 0 turned off")');
    await page.waitForSelector('article.model-admin[data-slug="openai/gpt-4o-mini"]');
    assert.match(await page.locator('article.model-admin[data-slug="openai/gpt-4o-mini"] tr.endpoint-row').innerText(), /\$0\.15 \/ \$0\.60/);
    assert.deepEqual(errors, []);

    // A visitor (not signed in) finds it on the public models page with the filters.
    const v = await visitor.newPage();
    const verrors = watchErrors(v);
    await v.goto(`${base}/models`);
    await v.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await v.waitForSelector('li.model-card[data-slug="openai/gpt-4o-mini"]');
    const all = await v.locator('li.model-card').count();
    await v.selectOption('.model-filters select[name=provider]', 'OpenAI');
    await v.selectOption('.model-filters select[name=context]', '1000000');
    await v.waitForFunction(() => !document.querySelector('li.model-card[data-slug="openai/gpt-4o-mini"]'));
    const million = await v.locator('li.model-card').evaluateAll((els) => els.map((e) => e.dataset.slug).sort());
    assert.deepEqual(million, ['openai/gpt-4.1', 'openai/gpt-4.1-mini', 'openai/gpt-4.1-nano']);
    await v.selectOption('.model-filters select[name=context]', '0');
    await v.selectOption('.model-filters select[name=price]', '500000000');
    await v.fill('.model-filters input[name=q]', 'mini');
    await v.waitForFunction(() => document.querySelectorAll('li.model-card').length === 2);
    const cheap = await v.locator('li.model-card').evaluateAll((els) => els.map((e) => e.dataset.slug).sort());
    assert.deepEqual(cheap, ['openai/gpt-4.1-mini', 'openai/gpt-4o-mini']);
    assert.match(await v.locator('p.count').innerText(), new RegExp(`2 of ${all} models`));
    await v.screenshot({ path: path.join(shots, 'models-filtered.png'), fullPage: true });

    // Its page: price, providers, and a request to copy that works with a key.
    await v.click('li.model-card[data-slug="openai/gpt-4o-mini"] a');
    await v.waitForURL(/\/models\/openai\/gpt-4o-mini$/);
    await v.waitForSelector('h1:has-text("OpenAI: GPT-4o mini")');
    const listed = (await (await fetch(`${base}/api/v1/models`)).json()).data.find((m) => m.id === 'openai/gpt-4o-mini');
    // USD per token (the API) -> "$0.1875" per million (the page): move the point six places.
    const perM = (s) => {
      const [i, f = ''] = s.split('.');
      const frac = f.padEnd(6, '0');
      return `$${BigInt(i + frac.slice(0, 6))}.${frac.slice(6).replace(/0+$/, '').padEnd(2, '0')}`;
    };
    const facts = await v.locator('dl.model-facts').innerText();
    assert.ok(facts.includes(perM(listed.pricing.prompt)), `${perM(listed.pricing.prompt)} in ${facts}`);
    assert.match(await v.locator('table.model-providers').innerText(), /OpenAI/);
    const curl = await v.locator('pre.request-example').innerText();
    assert.match(curl, /"model": "openai\/gpt-4o-mini"/);
    assert.ok(curl.includes(`${base}/api/v1/chat/completions`), curl);
    await v.click('button[role=tab]:has-text("Python")');
    await v.waitForFunction(() => document.querySelector('pre.request-example')?.innerText.includes('from openai import OpenAI'));
    await v.screenshot({ path: path.join(shots, 'model-page.png'), fullPage: true });
    const r = await fetch(`${base}/api/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${demoKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] }),
    });
    assert.equal(r.status, 200);
    // An unknown model says so.
    await v.goto(`${base}/models/nobody/nothing`);
    await v.waitForSelector('h1:has-text("No such model")');
    assert.deepEqual(verrors, []);
  } finally {
    await ctx.close();
    await visitor.close();
    upstream.kill('SIGTERM');
  }
});

function cli(args) {
  return new Promise((resolve, reject) => {
    let out = '';
    const p = spawn(process.env.SWITCHYARD_BIN, args, {
      env: { ...process.env, DATABASE_URL: dbUrl, SWITCHYARD_SECRET_KEY_FILE: `${dataDir}/secret.key`, RUST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    p.stdout.on('data', (d) => { out += d; });
    p.on('exit', (c) => (c === 0 ? resolve(out) : reject(new Error(`switchyard ${args.join(' ')} exited with ${c}`))));
  });
}

test('usage: the overview charts spend, the activity log filters and explains a request, the admin reads analytics', async () => {
  // An analyst the operator makes a platform admin (the demo account has used up its sign-ins for now), and
  // two months of synthetic usage in their organisation, recorded by the CLI into the running server's database.
  const analyst = { email: 'analyst@example.com', password: 'correct horse battery' };
  await cli(['admin', 'create', '--email', analyst.email, '--password', analyst.password]);
  const said = await cli(['usage', 'seed', '3000', '--org', `${analyst.email} (personal)`, '--days', '60', '--keys', '2']);
  assert.match(said, /seeded 3000 generations/);
  // And one real call in the demo organisation, so the platform has two organisations with usage; its
  // provider reports (and bills) far more than it was told to write, which the operator eats.
  const call = await fetch(`${base}/api/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${demoKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo/fast-1', max_tokens: 5, messages: [{ role: 'user', content: 'Hello' }], x_fake: { overreport: 200000 } }),
  });
  assert.equal(call.status, 200);
  const ctx = await otherBrowser();
  try {
    const page = await signIn(ctx, analyst.email, analyst.password);
    const errors = watchErrors(page);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.waitForSelector('.chart-svg rect.bar');
    assert.equal(await page.locator('.card.period').count(), 3);
    // The default view: 7 days by hour, one column per hour.
    assert.equal(await page.locator('.chart-svg g.column').count(), 168);
    await page.click('.segmented[aria-label=Period] button[data-value="30d"]');
    await page.waitForFunction(() => document.querySelectorAll('.chart-svg g.column').length === 30);
    // Pointing at a bar shows its numbers; the last day has usage.
    await page.hover('.chart-svg g.column:last-of-type rect.hit');
    await page.waitForFunction(() => /Total \$/.test(document.querySelector('.chart-readout').innerText));
    assert.match(await page.locator('.chart-readout strong').innerText(), /^[A-Z][a-z]{2} \d+$/);
    // Stacked by key: the synthetic keys are in the legend; measured in requests.
    await page.selectOption('.usage-chart select[name=group]', 'key');
    await page.waitForFunction(() => /synthetic 1/.test(document.querySelector('.legend')?.innerText || ''));
    await page.click('.segmented[aria-label=Measure] button:has-text("Requests")');
    await page.waitForFunction(() => /Total [\d,.]+K?$/.test(document.querySelector('.chart-readout')?.innerText.split('\n')[0] || ''));
    // The same numbers as a table.
    await page.click('.chart-table summary');
    assert.ok(await page.locator('.chart-data tbody tr').count() > 5);
    assert.match(await page.locator('.top-table').first().innerText(), /Top models[\s\S]*\//);
    await page.screenshot({ path: path.join(shots, 'usage-overview.png'), fullPage: true });

    // The activity log: filter to errors, open one, see its routing attempts.
    await page.click('a:has-text("Activity log")');
    await page.waitForURL(/\/activity$/);
    await page.waitForSelector('tr.activity-row');
    assert.equal(await page.locator('tr.activity-row').count(), 50);
    const firstBefore = await page.locator('tr.activity-row').first().getAttribute('data-id');
    await page.click('button:has-text("Older →")');
    await page.waitForFunction((id) => document.querySelector('tr.activity-row')?.getAttribute('data-id') !== id, firstBefore);
    await page.click('button:has-text("← Newer")');
    await page.waitForFunction((id) => document.querySelector('tr.activity-row')?.getAttribute('data-id') === id, firstBefore);
    await page.selectOption('select[name=range]', '30d');
    await page.selectOption('select[name=status]', 'error');
    await page.waitForFunction(() => [...document.querySelectorAll('tr.activity-row .status')].every((s) => /Error/.test(s.textContent))
      && document.querySelectorAll('tr.activity-row').length > 0);
    assert.match(await page.locator('p.count').innerText(), /^[\d,]+ matching requests$/);
    await page.locator('tr.activity-row button.link-button').first().click();
    await page.waitForSelector('.generation-detail ol.attempts li');
    const detail = await page.locator('.generation-detail').innerText();
    assert.match(detail, /Routing/);
    assert.match(detail, /HTTP (429|502)/);
    assert.match(detail, /Prompt logging is off/);
    assert.match(detail, new RegExp(analyst.email));
    await page.screenshot({ path: path.join(shots, 'activity-detail.png'), fullPage: true });
    // The CSV of what is shown, with the session's cookie.
    const href = await page.locator('a:has-text("Download CSV")').getAttribute('href');
    assert.match(href, /status=error/);
    const csv = await page.request.get(`${base}${href}`);
    assert.equal(csv.status(), 200);
    assert.match(csv.headers()['content-type'], /text\/csv/);
    const lines = (await csv.text()).trim().split('\n');
    assert.ok(lines.length > 1 && lines[0].startsWith('id,time_utc,model'));
    assert.ok(lines.slice(1).every((l) => /,(429|502),/.test(l)), 'only errors');

    // The platform admin's analytics.
    await page.goto(`${base}/admin/analytics`);
    await page.waitForSelector('header[data-hydrated="true"]', { timeout: 20000 });
    await page.waitForSelector('.analytics-cards [data-card=revenue] .card-value');
    assert.match(await page.locator('[data-card=revenue] .card-value').innerText(), /^\$[\d,]+\.\d\d$/);
    assert.match(await page.locator('[data-card=liability] .card-value').innerText(), /^\$/);
    assert.ok(await page.locator('.money-table').first().locator('tbody tr').count() >= 1);
    assert.match(await page.locator('.money-table').first().innerText(), /Providers[\s\S]*dev/);
    // What the provider billed beyond the hold is the operator's, shown per provider.
    assert.match(await page.locator('[data-card=uncollected] .card-value').innerText(), /^\$\d/);
    assert.match(await page.locator('.losses tr[data-loss=over_hold]').innerText(), /usage reported above the hold/);
    await page.selectOption('.analytics-page select[name=group]', 'org');
    await page.waitForFunction(() => /analyst@example\.com \(personal\)/.test(document.querySelector('.legend')?.innerText || '')
      && /Demo/.test(document.querySelector('.legend')?.innerText || ''));
    await page.screenshot({ path: path.join(shots, 'admin-analytics.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
  }
});
