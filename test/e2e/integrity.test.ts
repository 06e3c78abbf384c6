/**
 * The new user's walkthrough that lost and misplaced labels, replayed in Debian's Chromium against
 * the real server, on two synthetic projects built here (no ../shared/data needed): every check
 * compares the stored label pixel for pixel with what the gestures drew.
 * - lassoed nuclei survive turning objects on and painting objects, and a reload shows them;
 * - a lasso closed next to its start fills, and the next lasso is a lasso of its own;
 * - reject then undo brings the proposal back without storing it; accept stores it as accepted;
 * - after switching projects the annotator shows the other project's image, and strokes land there;
 * - a label restored elsewhere replaces the one on screen;
 * - a stroke that cannot be saved is shown pending, retried, and lands;
 * - a second server in the same browser does not sign the first one out;
 * - "labels" count images, not strokes; the export dialog keeps unknown pixels and closes on Escape.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { binaryUrls, type MaskloopApi } from '../../src/shared';
import { createProject, openProject } from '../../src/store';
import {
  collectPageErrors, ensureRendererBuilt, getBinary, imageToPage, launchChromium, missingPrerequisite, screenshot, startServer, strokeThrough, tempDir, waitSaved,
  type RunningServer,
} from './helpers';

const skipReason = missingPrerequisite();
if (skipReason) console.warn(`[e2e] skipped: ${skipReason}`);

const SIZE = 96;

async function call<T>(api: MaskloopApi, channel: Parameters<MaskloopApi['invoke']>[0], request: unknown): Promise<T> {
  const result = await api.invoke(channel, request as never);
  if (!result.ok) throw new Error(`${channel}: ${result.error.kind}: ${result.error.message}`);
  return result.value as T;
}

/** A project of `count` synthetic nuclei images (8-bit PNG, all SIZE x SIZE); image ids 1..count. */
async function makeProject(root: string, name: string, count: number, seed: number, proposalFor: number | null): Promise<string> {
  const dir = path.join(root, name);
  const images = path.join(root, `${name}-images`);
  mkdirSync(images, { recursive: true });
  const project = createProject(dir, { name });
  for (let i = 0; i < count; i++) {
    const sample = syntheticNuclei({ width: SIZE, height: SIZE, bitDepth: 8, seed: seed + i });
    const file = path.join(images, `${name}-${String(i + 1).padStart(2, '0')}.png`);
    // Written as grey: without the colourspace sharp widens one channel to RGB.
    await sharp(Uint8Array.from(sample.image.data as Uint8Array), { raw: { width: SIZE, height: SIZE, channels: 1 } }).toColourspace('b-w').png().toFile(file);
    const { image } = await project.addImage({ path: file, width: SIZE, height: SIZE, channels: 1, bitDepth: 8, format: 'png' });
    if (image.id === proposalFor) {
      // A model's proposal, as a prelabel job would store it: the ground truth's foreground.
      const checkpoint = project.cachePath('checkpoints', 'model.mlckpt');
      mkdirSync(path.dirname(checkpoint), { recursive: true });
      writeFileSync(checkpoint, 'a checkpoint');
      const model = project.addModel({ kind: 'segmentation', checkpointPath: checkpoint, config: {} });
      project.promoteModel(model.id, { reason: 'test' });
      const truth = sample.foreground;
      project.addPrediction({ imageId: image.id, modelId: model.id, mask: { width: SIZE, height: SIZE, data: truth }, uncertaintyScore: 0.5 });
    }
  }
  project.close();
  return dir;
}

/** A warm-tinted RGB picture (a brightfield photograph's colours): R 100-200, G 80-180, B 60-160. */
async function addRgbImage(dir: string, file: string): Promise<number> {
  const rgb = new Uint8Array(SIZE * SIZE * 3);
  for (let i = 0; i < SIZE * SIZE; i++) {
    const v = (i % SIZE) * (100 / (SIZE - 1));
    rgb.set([100 + v, 80 + v, 60 + v], i * 3);
  }
  await sharp(rgb, { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toFile(file);
  const project = openProject(dir);
  const { image } = await project.addImage({ path: file, width: SIZE, height: SIZE, channels: 3, bitDepth: 8, format: 'png' });
  project.close();
  return image.id;
}

/** Pixels labeled (nonzero) in a stored label, as a set of indices. */
function labeledPixels(data: ArrayLike<number>): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) out.add(i);
  return out;
}

/** Every pixel strictly inside the square [x0, x1] x [y0, y1] (image pixel coordinates). */
function inside(x0: number, y0: number, x1: number, y1: number): number[] {
  const out: number[] = [];
  for (let y = y0 + 1; y < y1; y++) for (let x = x0 + 1; x < x1; x++) out.push(y * SIZE + x);
  return out;
}

/** A lasso round a square, released half a pixel from where it started. */
function lassoSquare(page: Page, x0: number, y0: number, x1: number, y1: number): Promise<void> {
  return strokeThrough(page, [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0 + 0.5]], 4);
}

async function canvasColourAt(page: Page, x: number, y: number): Promise<number[]> {
  const at = await imageToPage(page, x, y);
  return page.evaluate(({ px, py }) => {
    const canvas = document.querySelector<HTMLCanvasElement>('[data-testid="editor-canvas"]')!;
    const box = canvas.getBoundingClientRect();
    const ratio = canvas.width / box.width;
    return Array.from(canvas.getContext('2d')!.getImageData(Math.round((px - box.left) * ratio), Math.round((py - box.top) * ratio), 1, 1).data);
  }, { px: at.x, py: at.y });
}

describe.skipIf(!!skipReason)('the annotator never loses or misplaces a label (Chromium)', () => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  let root: string;
  let nuclei: string;
  let other: string;
  let rgbImage: number;

  async function openProjectInUi(dir: string): Promise<void> {
    await page.locator('button.logo').click();
    await page.getByTestId('start-screen').waitFor();
    await page.locator(`button.entry[title="${dir}"]`).click();
    await page.getByTestId('gallery').waitFor();
  }

  async function openImage(imageId: number): Promise<void> {
    await page.getByTestId('tab-gallery').click();
    await page.locator(`[data-testid="gallery-cell"][data-image-id="${imageId}"]`).dblclick();
    await page.getByTestId('annotator').waitFor();
    await page.getByTestId('editor-canvas').waitFor();
    await expect.poll(() => page.getByTestId('image-name').textContent()).not.toBe('…');
  }

  beforeAll(async () => {
    await ensureRendererBuilt();
    root = tempDir('maskloop-e2e-integrity-');
    nuclei = await makeProject(root, 'nuclei', 3, 100, 2);
    other = await makeProject(root, 'other', 2, 500, null);
    rgbImage = await addRgbImage(other, path.join(root, 'other-images', 'brightfield.png'));
    server = await startServer();
    // Both projects in the app's recent list, the way a user who used them before has them.
    await call(server.api, 'project:open', { dir: other });
    await call(server.api, 'project:open', { dir: nuclei });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    errors = collectPageErrors(page);
    await page.goto(server.url);
    await page.getByTestId('gallery').waitFor();
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('lassoed nuclei survive objects mode, each lasso closed next to its start, and a reload shows them all', async () => {
    await openImage(1);
    await page.getByTestId('tool-polygon').click();
    await lassoSquare(page, 10, 10, 30, 30);
    await waitSaved(page, 1);
    await lassoSquare(page, 50, 10, 70, 30);
    await waitSaved(page, 2);
    let label = (await getBinary(server, binaryUrls.label(1)))!;
    const lassoed = labeledPixels(label.data);
    // Two fills, no giant zigzag polygon joining them.
    for (const i of [...inside(10, 10, 30, 30), ...inside(50, 10, 70, 30)]) expect(lassoed.has(i)).toBe(true);
    expect(lassoed.has(20 * SIZE + 40)).toBe(false);
    expect(label.dtype).toBe('uint8');

    await page.getByTestId('objects').check();
    await page.getByTestId('tool-instance-new').click();
    await strokeThrough(page, [[20, 60], [30, 60]]);
    await waitSaved(page, 3);
    label = (await getBinary(server, binaryUrls.label(1)))!;
    expect(label.dtype).toBe('int32');
    const after = labeledPixels(label.data);
    for (const i of lassoed) expect(after.has(i), `pixel ${i} lost`).toBe(true);
    expect(after.has(60 * SIZE + 25)).toBe(true);
    // Each lassoed nucleus became an object of its own, apart from the painted one.
    const ids = new Set([label.data[20 * SIZE + 20], label.data[20 * SIZE + 60], label.data[60 * SIZE + 25]]);
    expect(ids.size).toBe(3);
    const onScreen = await canvasColourAt(page, 20, 20);

    await page.reload();
    await openImage(1);
    expect(await canvasColourAt(page, 20, 20)).toEqual(onScreen);
    expect(await canvasColourAt(page, 60, 20)).not.toEqual(await canvasColourAt(page, 40, 20));
    await screenshot(page, 'integrity-01-objects');
  }, 240_000);

  it('reject then undo brings the proposal back without storing it; accept stores it as accepted', async () => {
    await openImage(2);
    await page.getByTestId('proposal-banner').waitFor();
    await page.keyboard.press('r');
    await expect.poll(() => page.getByTestId('proposal-banner').count()).toBe(0);
    await page.keyboard.press('Control+z');
    await page.getByTestId('proposal-banner').waitFor();
    await page.waitForTimeout(300);
    expect(await call<unknown[]>(server.api, 'labels:history', { imageId: 2 })).toEqual([]);
    await page.getByTestId('accept-proposal').click();
    await waitSaved(page, 1);
    const history = await call<{ source: string }[]>(server.api, 'labels:history', { imageId: 2 });
    expect(history.map((v) => v.source)).toEqual(['accepted_proposal']);
    const label = (await getBinary(server, binaryUrls.label(2)))!;
    const proposal = (await getBinary(server, binaryUrls.proposal(2)))!;
    expect(Array.from(label.data)).toEqual(Array.from(proposal.data));
  }, 120_000);

  it('after a project switch the annotator shows that project\'s image and strokes land in it', async () => {
    // Image 1 open in the first project, then image 1 of the second: same id, same size.
    await openImage(1);
    const before = (await getBinary(server, binaryUrls.label(1)))!;
    await openProjectInUi(other);
    await openImage(1);
    expect(await page.getByTestId('image-name').textContent()).toBe('other-01.png');
    await expect.poll(() => page.getByTestId('save-state').textContent()).toContain('Nothing saved yet');
    await page.getByTestId('tool-brush').click();
    await strokeThrough(page, [[40, 40], [50, 40]]);
    await waitSaved(page, 1);
    const stored = (await getBinary(server, binaryUrls.label(1)))!;
    expect(labeledPixels(stored.data).has(40 * SIZE + 45)).toBe(true);
    expect(stored.version).toBe(1);
    // An RGB picture is shown in its natural colours: the warm tint stays, each channel is not stretched on its own.
    await openImage(rgbImage);
    expect(await page.getByTestId('link-channels').isChecked()).toBe(true);
    const [r, g, b] = await canvasColourAt(page, SIZE / 2, SIZE / 2);
    expect(r - g).toBeGreaterThan(25);
    expect(g - b).toBeGreaterThan(25);
    await screenshot(page, 'integrity-03-rgb');
    // The first project's image 1 is as it was.
    await openProjectInUi(nuclei);
    const untouched = (await getBinary(server, binaryUrls.label(1)))!;
    expect(untouched.version).toBe(before.version);
    expect(Array.from(untouched.data)).toEqual(Array.from(before.data));
  }, 180_000);

  it('a label restored elsewhere replaces the one on screen, and the next stroke builds on it', async () => {
    await openImage(3);
    await page.getByTestId('tool-brush').click();
    await strokeThrough(page, [[10, 80], [30, 80]]);
    await waitSaved(page, 1);
    await strokeThrough(page, [[60, 80], [80, 80]]);
    await waitSaved(page, 2);
    await call(server.api, 'labels:restore', { imageId: 3, version: 1 });
    await expect.poll(() => page.getByTestId('save-state').textContent(), { timeout: 20_000 }).toContain('version 3');
    await strokeThrough(page, [[40, 50], [45, 50]]);
    await waitSaved(page, 3);
    const label = labeledPixels((await getBinary(server, binaryUrls.label(3)))!.data);
    expect(label.has(80 * SIZE + 20)).toBe(true);
    expect(label.has(80 * SIZE + 70)).toBe(false);
    expect(label.has(50 * SIZE + 42)).toBe(true);
  }, 120_000);

  it('a stroke that cannot be saved is shown pending, retried, and lands', async () => {
    await page.route('**/api/invoke/labels:*', (route) => route.abort());
    await strokeThrough(page, [[10, 40], [20, 40]]);
    await page.getByTestId('save-pending').waitFor({ timeout: 20_000 });
    expect(await page.getByTestId('save-pending').textContent()).toContain('1 edit not saved yet');
    await strokeThrough(page, [[10, 45], [20, 45]]);
    await expect.poll(() => page.getByTestId('save-pending').textContent()).toContain('2 edits');
    await page.unroute('**/api/invoke/labels:*');
    // The queue also retries by itself (growing pauses): on a busy machine that retry can land, and
    // the button go, before this click. Either way the edits must land; retryNow itself is unit-tested.
    await page.getByTestId('retry-save').click({ timeout: 2_000 }).catch(() => undefined);
    await waitSaved(page, 4);
    const label = labeledPixels((await getBinary(server, binaryUrls.label(3)))!.data);
    expect(label.has(40 * SIZE + 15)).toBe(true);
    expect(label.has(45 * SIZE + 15)).toBe(true);
    expect(label.has(50 * SIZE + 42)).toBe(true);
  }, 120_000);

  it('a second server in the same browser does not sign the first one out', async () => {
    const second = await startServer();
    try {
      const tab = await context.newPage();
      await tab.goto(second.url);
      await tab.getByTestId('start-screen').waitFor();
      await tab.close();
      await strokeThrough(page, [[70, 60], [80, 60]]);
      await waitSaved(page, 5);
      expect(labeledPixels((await getBinary(server, binaryUrls.label(3)))!.data).has(60 * SIZE + 75)).toBe(true);
    } finally {
      await second.stop();
    }
  }, 600_000);

  it('a class added by mistake can be removed again', async () => {
    const names = async () => (await call<{ settings: { classNames: string[] } }>(server.api, 'project:summary', {})).settings.classNames;
    const before = await names();
    await page.getByTestId('add-class').click();
    await expect.poll(names).toHaveLength(before.length + 1);
    await page.getByTestId('remove-class').click();
    await expect.poll(names).toEqual(before);
  }, 60_000);

  it('counts labeled images, not strokes', async () => {
    const summary = await call<{ retrain: { newLabels: number } }>(server.api, 'project:summary', {});
    // Images 1, 2 and 3 of this project have labels; no training ran.
    expect(summary.retrain.newLabels).toBe(3);
    await page.getByTestId('tab-progress').click();
    await expect.poll(() => page.getByTestId('images-annotate').textContent()).toBe('2');
    await expect.poll(() => page.getByTestId('images-accept').textContent()).toBe('1');
    await screenshot(page, 'integrity-02-progress');
  }, 60_000);

  it('exports keep unknown pixels, and Escape closes the export dialog', async () => {
    await openImage(3);
    await page.keyboard.press('u');
    await strokeThrough(page, [[85, 10], [85, 20]]);
    await waitSaved(page, 6);
    const stored = (await getBinary(server, binaryUrls.label(3)))!;
    await page.getByTestId('export').click();
    await page.getByTestId('export-format').selectOption('tiff');
    await page.getByTestId('export-folder').fill('e2e-tiff');
    await page.getByTestId('export-run').click();
    await page.getByTestId('export-result').waitFor({ timeout: 30_000 });
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByTestId('export-dialog').count()).toBe(0);
    const out = path.join(nuclei, 'exports', 'e2e-tiff');
    const { decodeImage } = await import('../../src/imaging/decode');
    const labels = await decodeImage(path.join(out, 'nuclei-03.tif'));
    expect(Array.from(labels.data)).toEqual(Array.from(stored.data));
    const unknown = await decodeImage(path.join(out, 'nuclei-03_unknown.tif'));
    expect(Array.from(unknown.data)).toEqual(Array.from(stored.unknown!, (v) => (v ? 255 : 0)));
    expect(existsSync(path.join(out, 'README.txt'))).toBe(true);
    expect(readFileSync(path.join(out, 'README.txt'), 'utf8')).toContain('unknown');
    expect(errors.filter((e) => !e.includes('net::ERR_FAILED') && !e.includes('Failed to fetch'))).toEqual([]);
  }, 120_000);
});
