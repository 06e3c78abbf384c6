/**
 * GET /api/images/:id/{pixels,thumbnail,label,proposal,uncertainty}: the binary half of the API,
 * answered the same way by the browser fallback server and Electron's app:// protocol.
 */
import { AppError, errorKind } from './errors';
import type { BinaryBody } from './pixels';
import type { AppService } from './service';

const ROUTE = /^\/api\/images\/(\d{1,12})\/(pixels|thumbnail|label|proposal|uncertainty)$/;

function text(status: number, message: string): BinaryBody {
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: new TextEncoder().encode(message) };
}

function intParam(url: URL, name: string): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null) return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw new AppError('argument', `query parameter ${name} must be a non-negative integer`);
  return Number(raw);
}

export function isBinaryRoute(pathname: string): boolean {
  return ROUTE.test(pathname);
}

export async function handleBinaryRoute(service: AppService, url: URL): Promise<BinaryBody> {
  const match = ROUTE.exec(url.pathname);
  if (!match) return text(404, 'not found');
  const imageId = Number(match[1]);
  try {
    switch (match[2]) {
      case 'pixels': {
        const [x, y, w, h] = ['x', 'y', 'w', 'h'].map((n) => intParam(url, n));
        const given = [x, y, w, h].filter((v) => v !== undefined).length;
        if (given !== 0 && given !== 4) throw new AppError('argument', 'a region needs all of x, y, w and h');
        if (given === 4 && (w === 0 || h === 0)) throw new AppError('argument', 'a region must not be empty');
        return await service.imagePixels(imageId, given === 4 ? { x: x!, y: y!, width: w!, height: h! } : undefined);
      }
      case 'thumbnail':
        return await service.imageThumbnail(imageId, intParam(url, 'size'));
      case 'label':
        return (await service.imageLabel(imageId, intParam(url, 'version'))) ?? text(404, `image ${imageId} has no label`);
      case 'proposal':
        return (await service.imageProposal(imageId, intParam(url, 'modelId'))) ?? text(404, `image ${imageId} has no proposal`);
      default:
        return (await service.imageUncertainty(imageId, intParam(url, 'modelId'))) ?? text(404, `image ${imageId} has no uncertainty map`);
    }
  } catch (error) {
    const kind = errorKind(error);
    return text(kind === 'argument' ? 400 : 500, `${kind}: ${(error as Error).message}`);
  }
}
