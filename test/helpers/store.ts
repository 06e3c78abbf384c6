import { expect } from 'vitest';
import { StoreError } from '../../src/store';

/** Asserts that fn throws a StoreError of the given cause (and message). */
export function expectStoreError(fn: () => unknown, code: StoreError['code'], message?: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error, 'throws').toBeInstanceOf(StoreError);
  expect((error as StoreError).code).toBe(code);
  if (message) expect((error as StoreError).message).toMatch(message);
}
