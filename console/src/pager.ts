import { h } from "./dom.js";

/**
 * Server-side paging with opaque page tokens: a stack of the tokens that opened each page, so
 * "Previous" replays the token of the page before (the server binds tokens to the filter).
 */
export class Pager {
  private readonly stack: string[] = [""];
  private next = "";
  readonly el: HTMLElement;
  private readonly prevButton: HTMLButtonElement;
  private readonly nextButton: HTMLButtonElement;
  private readonly label: HTMLElement;

  constructor(private readonly reload: () => void) {
    this.prevButton = h("button", { type: "button", onclick: () => this.go(-1) }, "← Previous");
    this.nextButton = h("button", { type: "button", onclick: () => this.go(1) }, "Next →");
    this.label = h("span", { class: "hint" });
    this.el = h(
      "nav",
      { class: "pager", "aria-label": "Pages" },
      this.prevButton,
      this.label,
      this.nextButton,
    );
  }

  /** The page token of the page to load. */
  get current(): string {
    return this.stack[this.stack.length - 1] ?? "";
  }

  /** Back to the first page (filters changed). */
  reset(): void {
    this.stack.splice(1);
    this.next = "";
  }

  /** Records the loaded page's next_page_token and refreshes the buttons. */
  loaded(nextPageToken: string): void {
    this.next = nextPageToken;
    this.prevButton.disabled = this.stack.length <= 1;
    this.nextButton.disabled = nextPageToken === "";
    this.label.textContent = `page ${this.stack.length}`;
  }

  private go(step: number): void {
    if (step > 0 && this.next !== "") this.stack.push(this.next);
    else if (step < 0 && this.stack.length > 1) this.stack.pop();
    else return;
    this.reload();
  }
}
