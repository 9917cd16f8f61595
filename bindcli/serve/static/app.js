// The page of `bind serve --ui`. Everything that comes from data (file names, paths, labels,
// messages) is set with textContent, never as HTML.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { collection: "", terms: [], inputs: { compare: [], classify: [] } };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function say(where, message, error = false) {
  where.textContent = message;
  where.classList.toggle("error", error);
}

// --- talking to the server: the page's header on every call, the login when asked ---------

async function api(path, body) {
  const options = { method: body ? "POST" : "GET", headers: { "X-Bind-UI": "1" }, body };
  const answer = await fetch("/ui/api/" + path, options);
  if (answer.status === 401) {
    await login();
    return api(path, body);
  }
  const data = await answer.json();
  if (!answer.ok) throw new Error(data.error ? data.error.message : answer.statusText);
  return data;
}

function login() {
  const form = $("#login");
  form.hidden = false;
  $("#token").focus();
  return new Promise((resolve) => {
    form.onsubmit = async (event) => {
      event.preventDefault();
      const answer = await fetch("/ui/login", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: $("#token").value }),
      });
      if (answer.ok) {
        form.hidden = true;
        $("#token").value = "";
        resolve();
      } else {
        $("#token").select();
      }
    };
  });
}

// --- collections and their state -----------------------------------------------------------

async function loadCollections() {
  const data = await api("collections");
  const select = $("#collection");
  select.replaceChildren(...data.collections.map((c) => el("option", { value: c.name, text: c.name })));
  state.all = Object.fromEntries(data.collections.map((c) => [c.name, c]));
  if (!data.collections.length) say($("#state"), `no collections in ${data.file}: make one with bind index`);
  const wanted = new URLSearchParams(location.search).get("collection");
  if (wanted && state.all[wanted]) select.value = wanted;
  showState();
}

function showState() {
  const c = state.all[$("#collection").value];
  if (!c) return;
  state.collection = c.name;
  const kinds = Object.entries(c.per_modality).map(([k, n]) => `${n} ${k}`).join(", ") || "empty";
  const updated = c.updated ? new Date(c.updated * 1000).toLocaleString() : "never";
  const search = c.search ? ` · ${c.search}` : "";
  const warning = c.searchable ? "" : " · made by another model than this server's";
  say($("#state"), `${c.files} items (${kinds}) · ${c.model_id}${search} · updated ${updated}${warning}`, !c.searchable);
}

// --- the query: typed text, dropped or picked files, recordings, results, with weights ------

function addTerm(term) {
  state.terms.push({ weight: 1, ...term });
  showTerms();
}

function showTerms() {
  $("#terms").replaceChildren(...state.terms.map((term, n) => {
    const weight = el("input", { type: "range", min: "-2", max: "2", step: "0.1", value: String(term.weight),
      "aria-label": `weight of ${term.name}` });
    const shown = el("output", { text: term.weight.toFixed(1) });
    weight.addEventListener("input", () => { term.weight = Number(weight.value); shown.textContent = term.weight.toFixed(1); });
    weight.addEventListener("change", search);
    const remove = el("button", { type: "button", text: "×", "aria-label": `remove ${term.name}`,
      onclick: () => { state.terms.splice(n, 1); showTerms(); if (state.terms.length) search(); } });
    return el("li", {}, el("span", { text: term.name }), weight, shown, remove);
  }));
}

function appendTerm(form, term) {
  if (term.file) form.append("file", term.file, term.file.name);
  else if (term.like !== undefined) form.append("like", String(term.like));
  else form.append("text", term.text);
  if (term.modality) form.append("modality", term.modality);
  form.append("weight", String(term.weight));
}

async function search() {
  const status = $("#status");
  const form = new FormData();
  form.append("collection", state.collection);
  form.append("k", $("#k").value || "24");
  for (const id of ["kind", "under", "glob"]) if ($("#" + id).value) form.append(id, $("#" + id).value);
  const typed = $("#text").value.trim();
  const terms = typed ? [{ text: typed, name: typed, weight: 1 }, ...state.terms] : state.terms;
  if (!terms.length) return say(status, "type words, drop a file or record a sound to search", true);
  terms.forEach((term) => appendTerm(form, term));
  say(status, "searching…");
  try {
    const data = await api("search", form);
    say(status, `${data.hits.length} results`);
    showResults(data.hits);
  } catch (error) {
    say(status, error.message, true);
  }
}

function itemUrl(what, hit) {
  return `/ui/${what}/${encodeURIComponent(state.collection)}/${hit.id}`;
}

function placeholder(reason) {
  return el("div", { class: "placeholder", text: reason });
}

function picture(hit) {
  const img = el("img", { src: itemUrl("thumb", hit), alt: hit.name, loading: "lazy" });
  if (hit.kind === "video") img.title = "Enter or a click plays it";
  img.addEventListener("error", async () => {
    // the thumbnail's answer says why the file cannot be drawn
    let reason = "no picture";
    try {
      const error = (await (await fetch(itemUrl("thumb", hit))).json()).error;
      reason = (typeof error === "string" ? error : error && error.message) || reason;
    } catch (error) { /* the reason stays generic */ }
    img.replaceWith(placeholder(reason));
  }, { once: true });
  return img;
}

function player(hit, tag) {
  // a media fragment starts (and stops) the player at the segment; seeking once the metadata is in
  // covers players that ignore the fragment
  const fragment = hit.start !== undefined ? `#t=${hit.start}${hit.end !== undefined ? "," + hit.end : ""}` : "";
  const media = el(tag, { src: itemUrl("file", hit) + fragment, controls: "", preload: "metadata" });
  if (hit.start !== undefined) {
    media.addEventListener("loadedmetadata", () => { if (media.currentTime < hit.start) media.currentTime = hit.start; }, { once: true });
  }
  media.addEventListener("error", () => media.replaceWith(placeholder("this browser cannot play the file")), { once: true });
  return media;
}

function play(card, hit) {
  const shown = card.querySelector("img, .placeholder");
  if (hit.kind === "video" && shown) {
    const video = player(hit, "video");
    shown.replaceWith(video);
    video.play().catch(() => {});
  } else {
    const media = card.querySelector("audio, video");
    if (media) media.paused ? media.play().catch(() => {}) : media.pause();
  }
}

function moreLike(hit) {
  state.terms = [{ like: hit.id, name: hit.name, weight: 1 }];
  $("#text").value = "";
  showTerms();
  search();
}

function copyPath(hit, button) {
  navigator.clipboard.writeText(hit.path).then(
    () => { button.textContent = "copied"; },
    () => { button.textContent = "select the path to copy"; },
  );
}

function showResults(hits) {
  const cards = hits.map((hit) => {
    const view = hit.kind === "audio" ? player(hit, "audio")
      : hit.pictured ? picture(hit) : placeholder(`${hit.kind}: ${hit.name}`);
    const segment = hit.start !== undefined
      ? el("span", { class: "segment", text: `from ${hit.start.toFixed(1)} s` + (hit.end !== undefined ? ` to ${hit.end.toFixed(1)} s` : "") })
      : "";
    const copy = el("button", { type: "button", text: "copy path", onclick: (e) => { e.stopPropagation(); copyPath(hit, copy); } });
    const more = el("button", { type: "button", text: "more like this", onclick: (e) => { e.stopPropagation(); moreLike(hit); } });
    const card = el("li", { class: "card", tabindex: "0", "data-path": hit.path, "data-kind": hit.kind },
      view, el("span", { class: "score", text: hit.score.toFixed(3) }), segment,
      el("span", { class: "path", text: hit.path }), el("div", { class: "actions" }, copy, more));
    card.hit = hit;
    if (hit.kind === "video") view.addEventListener("click", () => play(card, hit), { once: true });
    card.addEventListener("keydown", (event) => keyOnCard(event, card));
    return card;
  });
  $("#results").replaceChildren(...cards);
}

// keyboard: arrows move between results (up and down by a row), Enter plays, m: more like this,
// c: copy the path, /: the search box
function keyOnCard(event, card) {
  if (event.target !== card) return;
  const cards = [...$("#results").children];
  const at = cards.indexOf(card);
  const perRow = Math.max(1, Math.round($("#results").clientWidth / card.offsetWidth));
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: perRow, ArrowUp: -perRow };
  if (event.key in moves) {
    const next = cards[Math.min(cards.length - 1, Math.max(0, at + moves[event.key]))];
    next.focus();
  } else if (event.key === "Enter") play(card, card.hit);
  else if (event.key === "m") moreLike(card.hit);
  else if (event.key === "c") copyPath(card.hit, card.querySelector(".actions button"));
  else return;
  event.preventDefault();
}

document.addEventListener("keydown", (event) => {
  if (event.key === "/" && !["INPUT", "SELECT"].includes(document.activeElement.tagName)) {
    event.preventDefault();
    $("#text").focus();
  }
});

// --- the microphone: MediaRecorder's WebM or Ogg, sent as audio -------------------------------

let recorder = null;

async function toggleRecording() {
  const button = $("#record");
  if (recorder) {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    return say($("#status"), `no microphone: ${error.message}`, true);
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
  recorder.addEventListener("stop", () => {
    stream.getTracks().forEach((track) => track.stop());
    const type = recorder.mimeType || "audio/webm";
    const suffix = type.includes("ogg") ? "ogg" : "webm";
    const file = new File(chunks, `recording.${suffix}`, { type });
    recorder = null;
    button.classList.remove("on");
    button.textContent = "Record";
    addTerm({ file, name: "recording", modality: "audio" });
    search();
  });
  recorder.start();
  button.classList.add("on");
  button.textContent = "Stop";
}

// --- dropping and picking files ---------------------------------------------------------------

function filesArrived(target, files) {
  for (const file of files) {
    if (target === "search") addTerm({ file, name: file.name });
    else state.inputs[target].push({ file, name: file.name, weight: 1 });
  }
  if (target === "search") search();
  else showInputs(target);
}

function showInputs(target) {
  const list = $(`#${target} .inputs`);
  list.replaceChildren(...state.inputs[target].map((input, n) => el("li", {},
    el("span", { text: input.name }),
    el("button", { type: "button", text: "×", "aria-label": `remove ${input.name}`,
      onclick: () => { state.inputs[target].splice(n, 1); showInputs(target); } }))));
}

for (const zone of document.querySelectorAll(".drop")) {
  const target = zone.dataset.target;
  const picker = $("input[type=file]", zone);
  picker.addEventListener("change", () => { filesArrived(target, picker.files); picker.value = ""; });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    filesArrived(target, event.dataTransfer.files);
  });
}

for (const target of ["compare", "classify"]) {
  const adder = $(`#${target} .adder`);
  adder.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("input", adder);
    if (input.value.trim()) state.inputs[target].push({ text: input.value.trim(), name: input.value.trim(), weight: 1 });
    input.value = "";
    showInputs(target);
  });
}

// --- compare (a heat map) and classify (labels) -----------------------------------------------

async function compare() {
  const status = $("#compare .status");
  const form = new FormData();
  state.inputs.compare.forEach((input) => appendTerm(form, input));
  try {
    const data = await api("compare", form);
    say(status, "");
    const head = el("tr", {}, el("th"), ...data.names.map((name) => el("th", { text: name })));
    const rows = data.matrix.map((row, i) => el("tr", {}, el("th", { text: data.names[i] }), ...row.map((value) => {
      const cell = el("td", { text: value.toFixed(3) });
      cell.style.backgroundColor = `hsla(${value >= 0 ? 210 : 0}, 80%, 50%, ${Math.min(1, Math.abs(value)) * 0.8})`;
      return cell;
    })));
    $("#heat").replaceChildren(head, ...rows);
  } catch (error) {
    say(status, error.message, true);
  }
}

async function classify() {
  const status = $("#classify .status");
  const form = new FormData();
  for (const label of $("#labels").value.split(",")) if (label.trim()) form.append("label", label.trim());
  state.inputs.classify.forEach((input) => appendTerm(form, input));
  try {
    const data = await api("classify", form);
    say(status, "");
    $("#labelled").replaceChildren(...data.results.map((result) => el("tr", {},
      el("th", { text: result.input }),
      ...result.labels.slice(0, 3).map((l) => el("td", { text: `${l.label} ${(100 * l.probability).toFixed(1)}%` })))));
  } catch (error) {
    say(status, error.message, true);
  }
}

// --- wiring -----------------------------------------------------------------------------------

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tab")) {
      other.setAttribute("aria-pressed", String(other === tab));
      $("#" + other.dataset.panel).hidden = other !== tab;
    }
  });
}
$("#query").addEventListener("submit", (event) => { event.preventDefault(); search(); });
$("#record").addEventListener("click", toggleRecording);
$("#collection").addEventListener("change", () => { showState(); if ($("#results").children.length) search(); });
$("#compare-run").addEventListener("click", compare);
$("#classify-run").addEventListener("click", classify);
loadCollections().then(() => document.body.dataset.ready = "1", (error) => say($("#state"), error.message, true));
