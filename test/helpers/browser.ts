// Headless Chromium (Debian's /usr/bin/chromium, installed by scripts/setup.sh) driven by playwright-core,
// for the console's end-to-end tests. Page errors and failed console messages are collected so a test can
// assert the page stayed healthy; screenshots go to docs/screenshots when ATTUNE_SCREENSHOTS=1.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot } from './server.js';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Viewports the screenshots are taken at. */
export const viewports = {
  desktop: { width: 1440, height: 900 },
  phone: { width: 390, height: 844 },
} as const;

export interface BrowserFixture {
  readonly browser: Browser;
  /** A fresh context (own localStorage) and page; `problems` collects uncaught errors and console errors. */
  newPage(options?: { viewport?: { width: number; height: number } }): Promise<{ context: BrowserContext; page: Page; problems: string[] }>;
}

/** Registers `before` (launch) and `after` (close) on the enclosing suite; `args` go to Chromium as well. */
export function useBrowser({ args = [] }: { args?: string[] } = {}): BrowserFixture {
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  before(async () => {
    if (!existsSync(chromiumPath)) {
      throw new Error(`no Chromium at ${chromiumPath}: run scripts/setup.sh (installs Debian's chromium) or set CHROMIUM_PATH`);
    }
    // --no-sandbox: CI and containers run as root, where Chromium's sandbox cannot start.
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', ...args] });
  });
  after(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    await browser?.close();
  });
  return {
    get browser() {
      if (!browser) throw new Error('the browser is not launched yet (use the fixture inside tests)');
      return browser;
    },
    async newPage({ viewport = viewports.desktop } = {}) {
      const context = await this.browser.newContext({ viewport, acceptDownloads: true });
      contexts.push(context);
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      page.on('console', (message) => {
        // The console logs nothing itself; a failed request the page handles shows up as an error line too.
        if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) problems.push(`console error: ${message.text()}`);
      });
      return { context, page, problems };
    },
  };
}

/** Whether this run refreshes the committed screenshots (ATTUNE_SCREENSHOTS=1). */
export const updateScreenshots = process.env.ATTUNE_SCREENSHOTS === '1';
export const screenshotDir = path.join(repoRoot, 'docs', 'screenshots');

/** Takes the screenshot in every run (so rendering is exercised); writes it to docs/screenshots only when asked. */
export async function screenshot(page: Page, name: string, { fullPage = true } = {}): Promise<Buffer> {
  if (updateScreenshots) mkdirSync(screenshotDir, { recursive: true });
  return page.screenshot({ fullPage, path: updateScreenshots ? path.join(screenshotDir, `${name}.png`) : undefined, animations: 'disabled' });
}
