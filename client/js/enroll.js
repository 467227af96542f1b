// The monitor page's enrollment form, finished in the page: a group photo shows its faces as thumbnails to
// click (the choice goes as the enrollment's `face`, one per photo), a name that is taken offers Replace,
// every refusal is said in the page's own words under the field it is about, and the new identity is
// selected on the stream once enrolled (the caller's `onEnrolled`).

import { ApiError, enrollIdentity, findFaces, STREAM_NAME } from "./api.js";

/** sha256 (hex) of a file, computed here: the signed consent form never leaves this computer. */
async function sha256Hex(file) {
  if (!crypto.subtle) throw new Error("Hashing the consent form needs https:// (or localhost) in this browser.");
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The server's reason in the page's words: its photos by their file names, no command-line flags. */
export function pageWords(reason, files) {
  let text = String(reason);
  const noConsent = /^identity '([^']+)' has no consent record/.exec(text);
  if (noConsent) {
    return `"${noConsent[1]}" has no consent record: fill in Consent by, Production and Valid until (and the signed form), or tick No consent to enroll it unverified.`;
  }
  files.forEach((file, i) => {
    text = text.replace(new RegExp(`\\bphoto ${i + 1}\\b`, "g"), `"${file.name}"`);
  });
  return text
    .replace(/; say which one to enroll: --face largest, or --face N with N counted from 0 = the largest/, "")
    .replace(/;? ?(?:use --replace|send replace=true) to enroll it again/, "")
    .replace(/ \(OpenCV[^)]*\)/g, "")
    .replace(/\bOpenCV\b/g, "the image decoder");
}

/** Which field a refusal is about: consent, name or photos. */
export function fieldOf(reason) {
  if (/consent|valid[_ ]until|valid[_ ]from|production|document|signed form/i.test(reason)) return "consent";
  if (/photo|face|image|upload|pixels|decode/i.test(reason)) return "photo";
  if (/identity|name/i.test(reason)) return "name";
  return "photo";
}

export class EnrollForm {
  /**
   * @param el form, name, photo, consentBy, production, validUntil, consentDoc, unverified, submit, status,
   *   error, faces (the face picker's box), replaceRow, replace
   * @param onEnrolled async (name, body) => after a successful enrollment (select it on the stream)
   */
  constructor(el, onEnrolled) {
    this.el = el;
    this.onEnrolled = onEnrolled;
    this.choices = null; // per photo: the face index clicked, or null
    this.slots = {};
    el.unverified.addEventListener("change", () => {
      for (const c of [el.consentBy, el.production, el.validUntil, el.consentDoc]) c.disabled = el.unverified.checked;
    });
    el.photo.addEventListener("change", () => this.clearFaces());
    el.name.addEventListener("input", () => {
      el.replaceRow.hidden = true;
      el.replace.checked = false;
      this.say("name", "");
    });
    el.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /** A reason under the row of `field` ("name", "photo", "consent"), or none with "". */
  say(field, text) {
    const control = { name: this.el.name, photo: this.el.photo, consent: this.el.consentBy }[field];
    const row = control.closest(".row");
    let slot = this.slots[field];
    if (!slot) {
      slot = this.slots[field] = document.createElement("p");
      slot.className = "field-error";
      slot.dataset.field = `enroll-${field}`;
      slot.setAttribute("role", "alert");
      row.after(slot);
    }
    slot.textContent = text;
    slot.hidden = !text;
    control.setAttribute("aria-invalid", text ? "true" : "false");
  }

  clearAll() {
    for (const field of ["name", "photo", "consent"]) this.say(field, "");
    this.el.error.textContent = "";
  }

  clearFaces() {
    this.choices = null;
    this.el.faces.replaceChildren();
    this.el.faces.hidden = true;
    this.el.submit.textContent = "Enroll";
    this.say("photo", "");
  }

  async consent() {
    const el = this.el;
    if (el.unverified.checked) return { allow_unverified: "true" };
    const doc = el.consentDoc.files[0];
    return {
      consent_by: el.consentBy.value.trim(),
      production: el.production.value.trim(),
      valid_until: el.validUntil.value,
      document_sha256: doc ? await sha256Hex(doc) : "",
    };
  }

  async submit() {
    const el = this.el;
    this.clearAll();
    const name = el.name.value.trim();
    const files = [...el.photo.files];
    if (!STREAM_NAME.test(name)) {
      this.say("name", "Give a name of lower-case letters, digits, - or _ (up to 64), e.g. lead-actor.");
      return;
    }
    if (!files.length) {
      this.say("photo", "Choose at least one photo of the person's face.");
      return;
    }
    let consent;
    try {
      consent = await this.consent();
    } catch (err) {
      this.say("consent", err.message);
      return;
    }
    if (this.choices?.some((c) => c == null)) {
      this.say("photo", "Click the face to enroll in each photo that shows several, then press Enroll.");
      return;
    }
    const options = {};
    if (this.choices) options.face = this.choices.map((c) => (c == null ? "0" : String(c))).join(",");
    if (el.replace.checked) options.replace = "true";
    el.submit.disabled = true;
    el.status.textContent = "enrolling…";
    el.status.className = "status";
    try {
      const body = await enrollIdentity(name, files, consent, options);
      const flag = body?.consent?.status && body.consent.status !== "verified" ? ` (${body.consent.status})` : "";
      el.form.reset();
      el.unverified.dispatchEvent(new Event("change"));
      el.replaceRow.hidden = true;
      this.clearFaces();
      el.status.textContent = `enrolled ${name}${flag}, selected on this stream`;
      el.status.className = "status good";
      await this.onEnrolled(name, body);
    } catch (err) {
      el.status.textContent = "";
      await this.refused(err, name, files);
    } finally {
      el.submit.disabled = false;
    }
  }

  async refused(err, name, files) {
    const reason = err instanceof ApiError ? err.message : String(err);
    if (err instanceof ApiError && err.status === 409) {
      this.el.replaceRow.hidden = false;
      this.say("name", `"${name}" is enrolled already: tick Replace to enroll it again from these photos, or choose another name.`);
      return;
    }
    if (/has \d+ faces/.test(reason) && !this.choices) {
      await this.showFaces(files);
      return;
    }
    this.say(fieldOf(reason), pageWords(reason, files));
  }

  /** Thumbnails of every face in the photos that show several: a click chooses the face to enroll. */
  async showFaces(files) {
    let photos;
    try {
      photos = await findFaces(files);
    } catch (err) {
      this.say("photo", pageWords(err.message, files));
      return;
    }
    this.choices = photos.map((p) => (p.faces.length > 1 ? null : 0));
    const box = this.el.faces;
    box.replaceChildren();
    const several = photos.map((p, i) => [p, i]).filter(([p]) => p.faces.length > 1);
    for (const [photo, i] of several) {
      const group = document.createElement("div");
      group.className = "face-group";
      group.dataset.photo = String(i);
      const label = document.createElement("div");
      label.className = "hint";
      label.textContent = `${files[i].name}: ${photo.faces.length} faces, largest first`;
      group.append(label);
      for (const face of photo.faces) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "face-choice";
        button.dataset.index = String(face.index);
        button.title = `face ${face.index + 1} of ${photo.faces.length}, ${face.box[2]}×${face.box[3]} px`;
        button.setAttribute("aria-pressed", "false");
        const img = document.createElement("img");
        img.src = face.thumbnail;
        img.alt = button.title;
        button.append(img);
        button.addEventListener("click", () => this.choose(i, face.index, group, button));
        group.append(button);
      }
      box.append(group);
    }
    box.hidden = false;
    const names = several.map(([, i]) => `"${files[i].name}"`).join(", ");
    this.say("photo", `${names} ${several.length > 1 ? "show" : "shows"} several faces: click the one to enroll, then press Enroll.`);
  }

  choose(photo, index, group, button) {
    this.choices[photo] = index;
    for (const b of group.querySelectorAll(".face-choice")) b.setAttribute("aria-pressed", String(b === button));
    const open = this.choices.filter((c) => c == null).length;
    if (!open) {
      this.say("photo", "");
      this.el.submit.textContent = "Enroll the chosen face";
    }
  }
}
