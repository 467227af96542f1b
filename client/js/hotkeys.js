// The monitor page's keyboard: an operator's hands stay on the keys while their eyes stay on the picture
// (OBS and DeepFaceLive habits). Keys act only when no text field, list or button has the focus, and never
// with Ctrl, Alt or Meta (the browser's own shortcuts stay). `?` shows them all in an overlay.

export const HOTKEYS = [
  ["S", "swap on / off"],
  ["B", "bypass: the camera as it comes in (swap and relight off); again: back as before"],
  ["R", "record / stop recording"],
  ["1 – 9", "swap in identity 1 – 9 of the list"],
  ["0", "no identity"],
  ["?", "this help"],
  ["Esc", "close this help"],
];

function typing(target) {
  const el = target instanceof Element ? target : null;
  if (!el) return false;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  return !["checkbox", "radio", "range", "button", "submit", "color", "file"].includes(el.type);
}

export class Hotkeys {
  /**
   * @param actions {swap(), bypass(), record(), identity(n)} — n from 0 (none) to 9
   * @param button an element that opens the help (a "?" in the header), or null
   */
  constructor(actions, button = null) {
    this.actions = actions;
    this.overlay = null;
    button?.addEventListener("click", () => this.toggleHelp());
    document.addEventListener("keydown", (event) => this.onKey(event));
  }

  onKey(event) {
    if (event.ctrlKey || event.altKey || event.metaKey || event.repeat || typing(event.target)) return;
    const key = event.key;
    let done = true;
    if (key === "?") this.toggleHelp();
    else if (key === "Escape" && this.overlay) this.toggleHelp(false);
    else if (key === "s" || key === "S") this.actions.swap();
    else if (key === "b" || key === "B") this.actions.bypass();
    else if (key === "r" || key === "R") this.actions.record();
    else if (/^[0-9]$/.test(key)) this.actions.identity(Number(key));
    else done = false;
    if (done) event.preventDefault();
  }

  toggleHelp(show = !this.overlay) {
    if (!show) {
      this.overlay?.remove();
      this.overlay = null;
      return;
    }
    if (this.overlay) return;
    const shade = document.createElement("div");
    shade.className = "keys-help";
    shade.setAttribute("role", "dialog");
    shade.setAttribute("aria-label", "keyboard shortcuts");
    const box = document.createElement("div");
    box.className = "keys-help-box";
    const title = document.createElement("h2");
    title.textContent = "Keys";
    const table = document.createElement("table");
    for (const [keys, what] of HOTKEYS) {
      const row = table.insertRow();
      const k = document.createElement("kbd");
      k.textContent = keys;
      row.insertCell().append(k);
      row.insertCell().textContent = what;
    }
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = "Keys act when no text field or list has the focus. ?clean=1 in the address opens the program view.";
    box.append(title, table, note);
    shade.append(box);
    shade.addEventListener("click", () => this.toggleHelp(false));
    document.body.append(shade);
    this.overlay = shade;
  }
}
