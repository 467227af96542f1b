// What every page shares: the top bar's token field and small DOM helpers.

import { getToken, setToken } from "./api.js";

export const $ = (selector, root = document) => root.querySelector(selector);

/** Wire the token field in the top bar: it shows whether a token is set and stores it per tab. */
export function setupTokenField(onChange = () => {}) {
  const input = $("#token");
  if (!input) return;
  input.value = getToken();
  input.addEventListener("change", () => {
    if (input.value.trim() === getToken()) return; // nothing new: do not reconnect
    setToken(input.value);
    onChange();
  });
}

/** Set a status line's text and tone (`good`, `warn`, `bad` or none). */
export function setStatus(element, text, tone = "") {
  element.textContent = text;
  element.className = `status ${tone}`.trim();
}

/** Text for a number with a fixed number of decimals, or an en dash when there is none. */
export function fmt(value, digits = 0) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

/** The query parameter `name`, or `fallback`. */
export function param(name, fallback = "") {
  return new URLSearchParams(window.location.search).get(name) || fallback;
}
