const KEY = "latchkey.token";

/**
 * The signed-in token lives in sessionStorage only: it dies with the tab, is never written to
 * localStorage or a cookie, and so is never sent anywhere but in the Authorization header.
 */
export const session = {
  get(): string | undefined {
    return sessionStorage.getItem(KEY) ?? undefined;
  },
  set(token: string): void {
    sessionStorage.setItem(KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(KEY);
  },
};
