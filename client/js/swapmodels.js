// The swap model picker of the monitor page: the built-in mesh swap, or a model registered on the server
// with `stageswap models add` (GET /api/models). Models whose declared licence allows research use only,
// or whose licence was never declared, are marked in the list and warned about under it, so no operator
// puts one on a production without seeing it. A DFM has a person's identity trained in: its consent status
// is marked like an identity's (unverified, expired, pending), and the server refuses a new swap with one
// whose consent expired or is not yet valid. Models being trained on the server (`stageswap train`) are
// listed too, greyed out with their progress, until they finish and are registered.

import { getJson } from "./api.js";

const KIND_LABEL = { mesh: "built-in", inswapper: "inswapper", dfm: "DFM", dnr: "neural renderer" };
/** Kinds with a person's identity trained in (a likeness of their own, with its own consent record). */
const OWN_IDENTITY = new Set(["dfm", "dnr"]);
const TRAINING_REFRESH_MS = 10_000;

/** GET /api/models: {models: [{name, kind, licence, ..., consent}], training: [{name, state, iteration, ...}]}. */
export async function listModels() {
  const body = await getJson("/api/models");
  return {
    models: Array.isArray(body?.models) ? body.models : [],
    training: Array.isArray(body?.training) ? body.training : [],
  };
}

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
}

/** "training 1200/3000 · 1.4 it/s · ETA 12:00", or what became of a training that is not running. */
export function trainingLabel(t) {
  const iters = t.target_iterations ? `${t.iteration}/${t.target_iterations}` : `${t.iteration}`;
  if (t.state === "running") {
    const eta = t.eta_s != null ? ` · ETA ${clock(t.eta_s)}` : "";
    return `${t.name} (training ${t.resolution}px · iteration ${iters} · ${t.it_per_s} it/s${eta})`;
  }
  return `${t.name} (training ${t.state} at iteration ${iters}: stageswap train ${t.name} --resume)`;
}

/** The DFM's consent status when it is not verified ("unverified", "expired", "pending"), else "". */
function consentFlag(model) {
  const status = model?.consent?.status;
  return status && status !== "verified" ? status : "";
}

function consentWarning(model) {
  const flag = consentFlag(model);
  if (!flag) return "";
  if (flag === "unverified") {
    return `Consent unverified: ${model.name} has a person's identity trained in and no consent record on file.`;
  }
  if (flag === "expired") {
    return `Consent expired on ${model.consent.valid_until}: new swaps with ${model.name} are refused.`;
  }
  const from = model.consent.valid_from;
  return `Consent pending: valid from ${from}; new swaps with ${model.name} are refused until then.`;
}

function licenceWarning(model) {
  if (!model) return "";
  if (model.licence_flag === "research-only" || model.research_only) {
    return `Research only: ${model.name}'s licence (${model.licence}) does not allow commercial productions.`;
  }
  if (model.licence_flag === "undeclared") {
    return `Licence undeclared: check ${model.name}'s licence before using it on a production.`;
  }
  return "";
}

function optionLabel(model) {
  const kind = KIND_LABEL[model.kind] ?? model.kind;
  const res = model.resolution ? ` ${model.resolution}px` : "";
  const flag = model.research_only ? " · research only" : model.licence_flag === "undeclared" ? " · licence?" : "";
  const hint = OWN_IDENTITY.has(model.kind) ? " · own identity" : "";
  const consent = consentFlag(model) ? ` · ${consentFlag(model)}` : "";
  return `${model.name} (${kind}${res}${hint})${flag}${consent}`;
}

/** Binds a <select> (and a note element under it) to the stream's `swap_model`; `onPick(name)` sends it. */
export class SwapModelPicker {
  constructor(select, note, onPick) {
    this.select = select;
    this.note = note;
    this.models = new Map();
    this.current = "mesh";
    select.addEventListener("change", () => {
      this.showNote(select.value);
      onPick(select.value);
    });
    select.addEventListener("focus", () => this.refresh()); // models are added on the server's command line
    this.timer = null;
  }

  /** Reload the list (keeps the selection; recognisers are not swap models and are left out). While a model
   * is training on the server, the list refreshes itself every few seconds to show its progress. */
  async refresh() {
    let listed;
    try {
      listed = await listModels();
    } catch {
      return; // an older server or no token yet: the built-in swap stays the only choice
    }
    const { models, training } = listed;
    this.models = new Map(models.filter((m) => m.kind !== "arcface").map((m) => [m.name, m]));
    if (!this.models.has("mesh")) this.models.set("mesh", { name: "mesh", kind: "mesh" });
    const keep = this.select.value || this.current;
    this.select.innerHTML = "";
    for (const model of this.models.values()) {
      const option = new Option(optionLabel(model), model.name);
      if (model.research_only || model.licence_flag === "undeclared" || consentFlag(model)) option.className = "warn";
      this.select.add(option);
    }
    // Trainings whose model is not registered (yet): shown, not selectable.
    const pending = training.filter((t) => !this.models.has(t.name) || t.state === "running");
    for (const t of pending) {
      const option = new Option(trainingLabel(t), `training:${t.name}`);
      option.disabled = true;
      option.className = "training";
      this.select.add(option);
    }
    this.show(keep);
    const running = pending.some((t) => t.state === "running");
    if (running && !this.timer) this.timer = setInterval(() => this.refresh(), TRAINING_REFRESH_MS);
    if (!running && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Show `name` as selected (a setting pushed by the server). */
  show(name) {
    const value = name || "mesh";
    this.current = value;
    if (![...this.select.options].some((o) => o.value === value)) this.select.add(new Option(value, value));
    this.select.value = value;
    this.showNote(value);
  }

  showNote(name) {
    const model = this.models.get(name);
    const text = [licenceWarning(model), consentWarning(model)].filter(Boolean).join(" ");
    this.note.textContent = text;
    this.note.hidden = !text;
  }
}
