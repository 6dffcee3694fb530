// What every browser script shares (tests/browser/*.cjs, examples/*/tests/webui/*.cjs): a
// list of named checks, and a runner that launches Chromium, runs the script's checks, prints
// one JSON line per check and exits 0 only when every check holds (2 when the script broke).
'use strict';

const { chromium } = require('playwright-core');

const results = [];

/** Records a check: its name, whether it held, and what was seen. */
function check(name, ok, seen) {
  results.push({ name, ok: Boolean(ok), seen });
}

/** Runs `checks(browser)` in a Chromium at `executablePath`, then reports and exits. */
function run(executablePath, checks) {
  (async () => {
    const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
    try {
      await checks(browser);
    } finally {
      await browser.close();
    }
    for (const result of results) console.log(JSON.stringify(result));
    process.exit(results.every((r) => r.ok) ? 0 : 1);
  })().catch((error) => {
    for (const result of results) console.log(JSON.stringify(result));
    console.error(error);
    process.exit(2);
  });
}

module.exports = { check, run };
