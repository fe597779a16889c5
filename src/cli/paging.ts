import { Progress } from "./progress.js";

/** The server's largest page; fewer round trips for long listings. */
const MAX_PAGE = 1_000;

/** One page as a list RPC returns it. */
export interface Page<T> {
  readonly items: readonly T[];
  readonly next: string;
}

/**
 * Follows `next_page_token` until the listing ends or `limit` items are in, so `--json` prints
 * the whole list as one document (not a silent first page). Shows a progress line on a
 * terminal once a second page is needed.
 */
export async function collectPages<T>(
  label: string,
  limit: number | undefined,
  fetch: (pageToken: string, pageSize: number) => Promise<Page<T>>,
): Promise<T[]> {
  const items: T[] = [];
  const progress = new Progress(label);
  let pageToken = "";
  try {
    do {
      const want = limit === undefined ? MAX_PAGE : Math.min(MAX_PAGE, limit - items.length);
      const page = await fetch(pageToken, want);
      items.push(...page.items.slice(0, want));
      pageToken = page.next;
      if (pageToken !== "") progress.update(`${items.length} so far`);
    } while (pageToken !== "" && (limit === undefined || items.length < limit));
  } finally {
    progress.done();
  }
  return items;
}
