// Drives mien serve's web page (/) in real headless Chromium through playwright-core:
// enroll two people through the API, upload a photo of both through #file, wait for
// body[data-state=done] and check the names in .face .name; enroll an unknown face through
// the page (.enroll-name + .enroll); delete a subject through the page (#subjects .delete);
// pick another face collection in #collection: its own people, not the default's.
//
//   MIEN_URL=http://127.0.0.1:PORT MIEN_KEY=ADMIN_KEY MIEN_DATA=../shared/data \
//     node tests/web/page_test.mjs
// Exits 1 with a message on any mismatch; 2 when Chromium or playwright-core is missing.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const url = process.env.MIEN_URL, key = process.env.MIEN_KEY;
const data = process.env.MIEN_DATA || '../shared/data';
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!url || !key) { console.error('page_test: set MIEN_URL and MIEN_KEY'); process.exit(2); }
if (!existsSync(chromiumPath)) {
  console.error(`page_test: ${chromiumPath} missing (apt-get install chromium; scripts/setup.sh)`);
  process.exit(2);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error('page_test: playwright-core missing (cd tests/web && npm ci): ' + e.message);
  process.exit(2);
}

function fail(msg) { console.error('page_test: FAIL: ' + msg); process.exitCode = 1; throw new Error(msg); }

async function api(method, path, body, ctype) {
  const r = await fetch(url + path, { method, body, headers: { 'X-API-Key': key, ...(ctype ? { 'Content-Type': ctype } : {}) } });
  const text = await r.text();
  if (r.status >= 300) fail(`${method} ${path}: ${r.status} ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : null;
}
async function subjects() {
  const j = await api('GET', '/v1/subjects');
  return (j.subjects || j).map(s => (typeof s === 'string' ? s : s.name));
}

const people = join(data, 'people', 'examples');
const train = join(people, 'knn_examples', 'train');
for (const [name, file] of [['obama', 'obama/obama.jpg'], ['biden', 'biden/biden.jpg']])
  await api('POST', `/v1/subjects/${name}/faces`, readFileSync(join(train, file)), 'image/jpeg');

const browser = await chromium.launch({ executablePath: chromiumPath, headless: true,
                                        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const errors = [];
try {
  const page = await browser.newPage();
  page.on('pageerror', e => errors.push(e.message));
  page.on('dialog', d => d.accept());
  await page.goto(url + '/', { waitUntil: 'load' });
  await page.fill('#apikey', key);
  await page.dispatchEvent('#apikey', 'change');

  // Identify: two_people.jpg is obama (left) and biden (right).
  // The names shown for a photo with n faces. The page may still be busy with an earlier
  // action (re-identifying after an enrollment), so wait for the network to settle first and
  // then for a finished state showing n faces.
  async function identify(file, n) {
    await page.waitForLoadState('networkidle');
    await page.evaluate(() => { delete document.body.dataset.state; });
    await page.setInputFiles('#file', file);
    const deadline = Date.now() + 90000;
    for (;;) {
      const state = await page.evaluate(() => document.body.dataset.state);
      if (state === 'error') fail(`${file}: state error, #status: ${await page.textContent('#status')}`);
      if (state === 'done') {
        await page.waitForLoadState('networkidle');
        const names = await page.$$eval('#faces .face .name', els => els.map(e => e.textContent.trim()));
        if (names.length === n) return names;
      }
      if (Date.now() > deadline) fail(`${file}: no result with ${n} faces in 90 s (state ${state})`);
      await new Promise(r => setTimeout(r, 200));
    }
  }
  let names = await identify(join(people, 'two_people.jpg'), 2);
  if ([...names].sort().join(',') !== 'biden,obama') fail(`two_people.jpg: names ${JSON.stringify(names)}`);
  const sims = await page.$$eval('#faces .face .similarity', els => els.map(e => e.textContent.trim()));
  if (sims.length !== 2 || sims.some(s => !/\d/.test(s))) fail(`similarities ${JSON.stringify(sims)}`);
  if (!(await page.$('#canvas'))) fail('no #canvas');

  // Enroll an unknown face through the page.
  names = await identify(join(people, 'lin-manuel-miranda.png'), 1);
  if (names.length !== 1 || names[0] !== 'unknown') fail(`lin-manuel-miranda.png: names ${JSON.stringify(names)}`);
  await page.fill('#faces .face .enroll-name', 'lin_manuel_miranda');
  await page.click('#faces .face .enroll');
  // Locators, not waitForFunction: the page's Content-Security-Policy forbids eval.
  const subjectName = n => page.locator('#subjects li .subject-name').filter({ hasText: new RegExp(`^\\s*${n}\\s*$`) });
  await subjectName('lin_manuel_miranda').waitFor({ timeout: 60000 });
  if (!(await subjects()).includes('lin_manuel_miranda')) fail('enrolled through the page but not in /v1/subjects');
  // The page identifies the photo again after an enrollment: the face now has its name.
  await page.locator('#faces .face .name').filter({ hasText: /^\s*lin_manuel_miranda\s*$/ })
    .waitFor({ timeout: 60000 });

  // Delete a subject through the page.
  const li = page.locator('#subjects li', { has: page.locator('.subject-name', { hasText: /^\s*biden\s*$/ }) });
  if ((await li.count()) !== 1) fail('biden not listed in #subjects');
  await li.locator('.delete').click();
  await subjectName('biden').waitFor({ state: 'detached', timeout: 30000 });
  if ((await subjects()).includes('biden')) fail('deleted through the page but still in /v1/subjects');
  names = await identify(join(people, 'two_people.jpg'), 2);
  if ([...names].sort().join(',') !== 'obama,unknown') fail(`after deleting biden: ${JSON.stringify(names)}`);

  // Another collection: made through the API with biden only; picked in the page, it names
  // biden and not obama, and lists only its own people.
  await api('POST', '/v1/collections', JSON.stringify({ name: 'page_test' }), 'application/json');
  await api('POST', '/v1/subjects/biden/faces?collection=page_test', readFileSync(join(train, 'biden/biden.jpg')), 'image/jpeg');
  await page.click('#refresh');
  await page.locator('#collection option[value="page_test"]').waitFor({ state: 'attached', timeout: 30000 });
  await page.selectOption('#collection', 'page_test');
  await subjectName('biden').waitFor({ timeout: 30000 });
  await subjectName('obama').waitFor({ state: 'detached', timeout: 30000 });
  names = await identify(join(people, 'two_people.jpg'), 2);
  if ([...names].sort().join(',') !== 'biden,unknown') fail(`in collection page_test: ${JSON.stringify(names)}`);
  await page.selectOption('#collection', 'default');
  await subjectName('obama').waitFor({ timeout: 30000 });
  if (errors.length) fail('errors in the page: ' + errors.join('; '));
  console.log('page_test: OK');
} catch (e) {
  if (!process.exitCode) { console.error('page_test: FAIL: ' + e.message); process.exitCode = 1; }
} finally {
  await browser.close();
}
