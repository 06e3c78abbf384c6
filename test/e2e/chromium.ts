/** Debian's Chromium: the browser the e2e tier drives (Playwright's own browsers cannot be downloaded here). */
export const CHROMIUM = '/usr/bin/chromium';
