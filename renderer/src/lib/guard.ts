/**
 * The page never leaves the app: no popups, no following links to other origins, no navigation
 * by dropping a file or URL on the window (a classic way to load foreign content into an app
 * window). Electron's main process enforces the same for real (will-navigate, window-open
 * handler); this keeps the browser fallback from doing it by accident.
 */
export function installNavigationGuard(): void {
  const deny = () => null;
  Object.defineProperty(window, 'open', { value: deny, writable: false, configurable: false });
  document.addEventListener(
    'click',
    (event) => {
      const link = (event.target as Element | null)?.closest?.('a[href]') as HTMLAnchorElement | null;
      if (!link) return;
      const url = new URL(link.href, location.href);
      if (url.origin !== location.origin || link.target === '_blank') event.preventDefault();
    },
    true,
  );
  for (const type of ['dragover', 'drop'] as const) {
    window.addEventListener(type, (event) => event.preventDefault());
  }
}
