// Who gets swapped, on the monitor (issue 22): each face the server tracks is outlined on the output video with
// its id, who the recogniser says it is and what its rule does ("untouched" when no rule picks it). Clicking a
// face opens a menu: an enrolled identity, or "leave alone", or "clear rule". The choice becomes the first rule of
// the stream's `targets` setting — matched by the performer when the face was recognised as one (so it follows
// them out of frame and back), else by its id `id:N` — and goes out as the same PATCH every control sends, so the
// server checks it and the audit log records it. Boxes follow the pushed stats (about twice a second).

/** How long the rules chosen on this page outlast pushed stats (a push may have left before the PATCH landed). */
const HOLD_CHOICE_MS = 3000;

/** The rectangle (in the element's pixels) where an object-fit: contain video draws its picture. */
function pictureRect(video) {
  const w = video.clientWidth;
  const h = video.clientHeight;
  const vw = video.videoWidth || w;
  const vh = video.videoHeight || h;
  const scale = Math.min(w / vw, h / vh);
  return {
    left: video.offsetLeft + (w - vw * scale) / 2,
    top: video.offsetTop + (h - vh * scale) / 2,
    width: vw * scale,
    height: vh * scale,
  };
}

/** The rule reference a face is picked by: its performer when recognised, else its id. */
export function faceRef(face) {
  return face.performer ? face.performer : `id:${face.id}`;
}

/** The targets after choosing `identity` (a name, or null: leave alone; undefined: clear) for the face `ref`.
 * With no rules yet, every other face keeps the stream's identity (a trailing `any` rule). */
export function rulesAfter(rules, settingsIdentity, ref, identity) {
  const current = Array.isArray(rules) ? rules : [];
  const kept = current.filter((r) => r.match !== ref);
  if (identity === undefined) return kept;
  const next = [{ match: ref, identity }, ...kept];
  if (current.length === 0 && settingsIdentity) next.push({ match: "any", identity: settingsIdentity });
  return next;
}

export class FaceTargets {
  /** `stage`: the element around the output video; `send(patch)`: PATCH the stream; `identities()`: the
   * enrolled identities' names. */
  constructor(stage, video, send, identities) {
    this.stage = stage;
    this.video = video;
    this.send = send;
    this.identities = identities;
    this.layer = document.createElement("div");
    this.layer.className = "face-layer";
    this.menu = document.createElement("div");
    this.menu.className = "face-menu";
    this.menu.hidden = true;
    this.menu.setAttribute("role", "menu");
    stage.append(this.layer, this.menu);
    this.faces = [];
    this.settings = {};
    this.chosenAt = -Infinity;
    document.addEventListener("click", (event) => {
      if (!this.menu.hidden && !this.menu.contains(event.target) && !event.target.closest(".face-box")) this.close();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close();
    });
  }

  /** Draw the faces of the newest stats (`stream.stats.face_list`) and remember the settings they edit. For a
   * moment after a choice the rules chosen here are kept over pushed ones, which may predate the PATCH: a second
   * click must build on the first, not on the rules before it. */
  show(stream) {
    if (stream.settings) {
      const held = performance.now() - this.chosenAt < HOLD_CHOICE_MS;
      this.settings = held ? { ...stream.settings, targets: this.settings.targets } : stream.settings;
    }
    this.faces = stream.stats?.face_list ?? [];
    const rect = pictureRect(this.video);
    const seen = new Set();
    for (const face of this.faces) {
      seen.add(String(face.id));
      let box = this.layer.querySelector(`.face-box[data-face-id="${face.id}"]`);
      if (!box) {
        box = document.createElement("button");
        box.type = "button";
        box.className = "face-box";
        box.dataset.faceId = String(face.id);
        box.append(document.createElement("span"));
        box.addEventListener("click", (event) => {
          event.stopPropagation();
          this.open(Number(box.dataset.faceId), box);
        });
        this.layer.append(box);
      }
      const [x1, y1, x2, y2] = face.box;
      Object.assign(box.style, {
        left: `${rect.left + x1 * rect.width}px`,
        top: `${rect.top + y1 * rect.height}px`,
        width: `${(x2 - x1) * rect.width}px`,
        height: `${(y2 - y1) * rect.height}px`,
      });
      const who = face.performer ? ` · ${face.performer}` : "";
      const what = face.identity ? `→ ${face.identity}` : "untouched";
      box.firstChild.textContent = `#${face.id}${who} ${what}`;
      box.classList.toggle("untouched", !face.identity);
      box.title = `face ${face.id}${face.performer ? `, recognised as ${face.performer}` : ""}: click to choose its identity`;
    }
    for (const box of [...this.layer.querySelectorAll(".face-box")]) {
      if (!seen.has(box.dataset.faceId)) box.remove();
    }
  }

  async open(faceId, box) {
    const face = this.faces.find((f) => f.id === faceId);
    if (!face) return;
    const ref = faceRef(face);
    const names = await this.identities();
    this.menu.innerHTML = "";
    const title = document.createElement("div");
    title.className = "face-menu-title";
    title.textContent = face.performer ? `${face.performer} (face #${face.id})` : `face #${face.id}`;
    this.menu.append(title);
    const choose = (label, identity, cls = "") => {
      const item = document.createElement("button");
      item.type = "button";
      item.className = `target-choice ${cls}`.trim();
      item.dataset.identity = identity === null ? "" : identity ?? "-";
      item.textContent = label;
      item.setAttribute("role", "menuitem");
      item.addEventListener("click", () => {
        this.close();
        const targets = rulesAfter(this.settings.targets, this.settings.identity, ref, identity);
        this.settings = { ...this.settings, targets };
        this.chosenAt = performance.now();
        this.send({ targets });
      });
      this.menu.append(item);
    };
    for (const name of names) choose(name, name, face.identity === name ? "current" : "");
    choose("leave alone", null, "leave");
    if ((this.settings.targets ?? []).some((r) => r.match === ref)) choose("clear rule", undefined, "clear");
    const stageRect = this.stage.getBoundingClientRect();
    const boxRect = box.getBoundingClientRect();
    this.menu.style.left = `${Math.max(0, Math.min(boxRect.right - stageRect.left + 6, stageRect.width - 180))}px`;
    this.menu.style.top = `${Math.max(0, boxRect.top - stageRect.top)}px`;
    this.menu.hidden = false;
  }

  close() {
    this.menu.hidden = true;
  }
}
