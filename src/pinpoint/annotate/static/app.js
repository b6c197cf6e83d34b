// pinpoint annotate: click target centres on infrared frames; every change is saved at once.
//
// Coordinates: the server speaks pixels of the original image in the project's convention,
// the centre of pixel (row i, column j) being x = j, y = i. On screen the image's left edge is
// at view.ox and one image pixel is view.scale CSS pixels wide, so a screen position sx lies
// u = (sx - ox) / scale pixels from the left edge, which is x = u - 0.5 in that convention.
// Pointer events, not mouse events: Chromium gives them fractional positions, while mouse
// events are truncated to whole CSS pixels, a quarter of an image pixel at the fitted size.
"use strict";

(() => {
  const HIT_RADIUS = 9; // CSS px: how close to a point a press must be to grab it
  const DRAG_START = 3; // CSS px of movement before a press on a point becomes a move
  const MAX_ZOOM = 16; // times the fitted size, and at least 16 CSS px per image pixel
  const WHEEL_SPEED = 0.0015; // zoom factor exp(-deltaY * speed): 100 px of wheel = x1.16
  const HISTORY_LIMIT = 500; // undo steps kept per image
  const RETRY_MS = 3000; // a save that could not reach the server is sent again after this long
  const KEY_ZOOM = 1.5; // + and - zoom by this factor around the cursor (or the centre)
  const NUDGE = 1; // image px an arrow key moves the selected point; with Shift a tenth of it
  const SUGGEST_RING = 10; // CSS px: a suggestion's ring, and how close a click must be to accept it
  const FEW_SUGGESTIONS = 3; // more than this, and "accept all" is no longer the highlighted button
  const TRAIN_POLL_MS = 1500; // how often a running "train on my labels" is asked how far it is
  const UNDO_TOAST_MS = 8000; // how long "no target" offers its undo in place
  const stored = (key, fallback) => { try { return localStorage.getItem(key) ?? fallback; } catch { return fallback; } };
  const store = (key, value) => { try { localStorage.setItem(key, value); } catch { /* private mode: not remembered */ } };

  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const enc = encodeURIComponent;

  const state = {
    images: [], // [{name, status: 'unlabelled' | 'labelled' | 'invalid', count, disagrees}]
    dataset: "",
    hasModel: false,
    matchPx: 3,
    filter: "all",
    name: null,
    width: 0,
    height: 0,
    bitmap: null, // the stretched frame as an ImageBitmap
    points: null, // [[x, y], ...] in pixels, or null while the image has no label file
    editable: false, // false while loading, or when the label file is malformed
    suggestions: [], // [[x, y, score], ...] from the model
    review: null, // the server's comparison of labels and predictions
    mode: "annotate", // or "review"
    view: { scale: 1, ox: 0, oy: 0, fit: 1, fitted: true },
    selected: -1,
    hover: -1,
    gesture: null, // {kind: 'move', ...} or {kind: 'pan', ...} while a button is held
    spaceDown: false,
    contrast: "0.5,99.5",
    loadToken: 0,
    cursor: null,
    cursorScreen: null, // [sx, sy] of the pointer over the canvas, for key zoom and key accept
    keepView: stored("pinpoint.keepView", "0") === "1", // zoom and pan stay when moving to another image
    hideMarkers: false, // h: the labels' and suggestions' marks off, to see the target under them
    threshold: 0, // the model's own score cut: where the suggestion slider starts
    minScore: null, // the slider: suggestions scoring below it are not shown
    sort: "name", // the list's order: name | doubt (model least sure first) | disagreement (most first)
    canTrain: false,
  };
  const histories = new Map(); // image name -> {undo: [...], redo: [...]} of point lists
  // Every edit of every image is kept here until the server has written it: image name ->
  // {points, number}. One worker sends them one at a time (so requests never overtake each other),
  // each with the version of the label file it was based on (If-Match): a file changed by someone
  // else meanwhile is never overwritten unseen (412, and the labeller chooses).
  const unsaved = new Map();
  const versions = new Map(); // image name -> version of its label file, as this page last read or wrote it
  const conflicts = new Map(); // image name -> the file as it is now ({points, version}), awaiting a choice
  const refused = new Map(); // image name -> why the server refused its edit (kept until the next edit)
  const waiting = new Set(); // images whose save could not reach the server: sent again on the next retry
  let saveCount = 0;
  let retryTimer = null;
  let sending = null; // the worker's promise while it runs

  // ----- server -------------------------------------------------------------------------

  // A failed request throws an Error with .status (none when the server could not be reached)
  // and .data (the server's JSON answer).
  async function api(method, path, body, headers = {}) {
    const options = { method, headers: { ...headers } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      throw new Error("cannot reach the pinpoint server");
    }
    const data = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) {
      const error = new Error(data.error || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.data = data;
      throw error;
    }
    return data;
  }

  // The server is away (restarting, or the network) rather than refusing: worth trying again.
  const serverAway = (error) => !error.status || error.status >= 500;

  async function fetchBitmap(name) {
    const query = state.contrast === "raw" ? "raw=1" : (() => {
      const [low, high] = state.contrast.split(",");
      return `low=${low}&high=${high}`;
    })();
    let response;
    try {
      response = await fetch(`/api/image/${enc(name)}?${query}`);
    } catch (error) {
      throw new Error("cannot reach the pinpoint server");
    }
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      const error = new Error(data.error || `cannot load image ${name}`);
      error.status = response.status;
      throw error;
    }
    return createImageBitmap(await response.blob());
  }

  async function loadList(predictAll = false) {
    const data = await api("GET", "/api/images" + (predictAll ? "?predict=1" : ""));
    state.images = data.images;
    state.dataset = data.dataset;
    state.hasModel = data.has_model;
    state.matchPx = data.match_px;
    state.threshold = data.threshold ?? 0;
    state.canTrain = Boolean(data.can_train);
    sortImages();
    if (state.minScore === null) $("min-score").value = String(state.threshold);
    document.body.classList.toggle("has-model", data.has_model);
    $("dataset").textContent = data.dataset;
    renderList();
  }

  // What most needs a human first: the images the model is least sure about, or those where it
  // disagrees most with the labels (both from its predictions on every image); ties by name.
  function sortImages() {
    const key = { doubt: (e) => e.doubt ?? -1, disagreement: (e) => e.disagreement ?? -1 }[state.sort];
    const byName = (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true });
    state.images.sort(key ? (a, b) => key(b) - key(a) || byName(a, b) : byName);
  }

  // ----- train on my labels -------------------------------------------------------------------

  async function startTraining() {
    try {
      renderTraining(await api("POST", "/api/train"));
      followTraining();
    } catch (error) {
      showMessage(error.message, true, 6000);
    }
  }

  let trainPoll = null;
  async function followTraining() {
    clearTimeout(trainPoll);
    let status;
    try {
      status = await api("GET", "/api/train");
    } catch (error) {
      trainPoll = setTimeout(followTraining, TRAIN_POLL_MS); // the server may be restarting
      return;
    }
    renderTraining(status);
    if (status.state === "running") {
      trainPoll = setTimeout(followTraining, TRAIN_POLL_MS);
    } else if (status.state === "done" && status.run !== state.trainedRun) {
      state.trainedRun = status.run; // new weights: new suggestions, and the list's model columns again
      showMessage(status.message, false, 6000);
      await loadList(state.sort !== "name" || state.filter === "disagree");
      if (state.name) loadSuggestions(state.name, state.loadToken);
    } else if (status.state === "failed") {
      showMessage(`training failed: ${status.message}`, true);
    }
  }

  function renderTraining(status) {
    $("train").disabled = status.state === "running";
    $("train-status").textContent = status.state === "running"
      ? `training on ${status.images} images: epoch ${status.epoch} / ${status.epochs}`
      : status.state === "done" ? `trained on ${status.images} images (${status.run})`
      : status.state === "failed" ? "the last run failed" : "";
  }

  // ----- saving and history ---------------------------------------------------------------

  const copyPoints = (points) => (points === null ? null : points.map((p) => [p[0], p[1]]));

  function undoStack() {
    let entry = histories.get(state.name);
    if (!entry) {
      entry = { undo: [], redo: [] };
      histories.set(state.name, entry);
    }
    return entry;
  }

  function remember(before) {
    const entry = undoStack();
    entry.undo.push(copyPoints(before));
    if (entry.undo.length > HISTORY_LIMIT) entry.undo.shift();
    entry.redo.length = 0;
  }

  function commit(points) {
    if (!state.editable) return;
    remember(state.points);
    state.points = points;
    state.selected = Math.min(state.selected, (points || []).length - 1);
    save();
    refresh();
  }

  function undo() {
    const entry = undoStack();
    if (!state.editable || !entry.undo.length) return;
    entry.redo.push(copyPoints(state.points));
    state.points = entry.undo.pop();
    state.selected = -1;
    save();
    refresh();
  }

  function redo() {
    const entry = undoStack();
    if (!state.editable || !entry.redo.length) return;
    entry.undo.push(copyPoints(state.points));
    state.points = entry.redo.pop();
    state.selected = -1;
    save();
    refresh();
  }

  // Sends the whole point list of the current image: PUT writes labels/NAME.txt, DELETE removes it
  // (when undo goes back to before the first point).
  function save() {
    return enqueueSave(state.name, copyPoints(state.points));
  }

  function enqueueSave(name, points) {
    unsaved.set(name, { points, number: ++saveCount });
    refused.delete(name);
    waiting.delete(name);
    return pump();
  }

  function pump() {
    if (!sending) {
      sending = sendAll().finally(() => {
        sending = null;
        renderSaveStatus();
      });
    }
    renderSaveStatus();
    return sending;
  }

  async function sendAll() {
    for (;;) {
      const next = [...unsaved.keys()].find((name) => !conflicts.has(name) && !refused.has(name) && !waiting.has(name));
      if (next === undefined) return;
      const { points, number } = unsaved.get(next);
      await sendOne(next, points, number);
      renderSaveStatus();
    }
  }

  async function sendOne(name, points, number) {
    const path = `/api/labels/${enc(name)}`;
    const headers = versions.has(name) ? { "If-Match": versions.get(name) } : {};
    try {
      const data = points === null ? await api("DELETE", path, undefined, headers) : await api("PUT", path, { points }, headers);
      versions.set(name, data.version);
      if (unsaved.get(name)?.number === number) unsaved.delete(name);
      updateEntry(name, points);
      if (name === state.name && state.mode === "review") loadReview();
    } catch (error) {
      if (error.status === 412) {
        conflicts.set(name, error.data.current);
        showConflict(name);
      } else if (serverAway(error)) {
        // Kept, with every other image's waiting edit, and sent again: restarting the server is
        // enough for nothing to be lost.
        waiting.add(name);
        refused.set(name, `retrying — ${error.message}`);
        scheduleRetry();
      } else {
        refused.set(name, error.message); // the server will not take it as it is; the next edit is sent
      }
    }
  }

  function scheduleRetry() {
    if (retryTimer !== null) return; // one timer for all: a second failure never cancels the first's retry
    retryTimer = setTimeout(() => {
      retryTimer = null;
      for (const name of waiting) refused.delete(name);
      waiting.clear();
      pump();
    }, RETRY_MS);
  }

  // Another tab or program changed the label file since this page read it: show both and let the
  // labeller keep theirs (sent again over the file's version) or take the file's.
  function showConflict(name) {
    const current = conflicts.get(name);
    const mine = unsaved.get(name)?.points ?? null;
    const describe = (points) => points === null ? "no label file" : points.length === 0 ? "no target (0)"
      : points.map((p) => `(${p[0].toFixed(2)}, ${p[1].toFixed(2)})`).join(" ");
    $("conflict-name").textContent = name;
    $("conflict-mine").textContent = describe(mine);
    $("conflict-theirs").textContent = describe(current.points);
    $("conflict").dataset.name = name;
    if (!$("conflict").open) $("conflict").showModal();
    renderSaveStatus();
  }

  function resolveConflict(keepMine) {
    const dialog = $("conflict");
    const name = dialog.dataset.name;
    const current = conflicts.get(name);
    dialog.close();
    if (!current) return;
    conflicts.delete(name);
    versions.set(name, current.version);
    if (!keepMine) {
      unsaved.delete(name);
      refused.delete(name);
      if (name === state.name) {
        remember(state.points);
        state.points = current.points;
        state.selected = -1;
        refresh();
      }
      updateEntry(name, current.points);
    }
    const next = conflicts.keys().next();
    if (!next.done) showConflict(next.value);
    pump();
  }

  function updateEntry(name, points) {
    const entry = state.images.find((e) => e.name === name);
    if (!entry) return;
    entry.status = points === null ? "unlabelled" : "labelled";
    entry.count = points === null ? null : points.length;
    renderList();
  }

  // ----- images -----------------------------------------------------------------------------

  async function openImage(name) {
    const token = ++state.loadToken;
    const previousSize = state.bitmap ? [state.width, state.height] : null;
    state.name = name;
    state.editable = false;
    state.selected = state.hover = -1;
    state.suggestions = [];
    state.review = null;
    window.history.replaceState(null, "", "#" + enc(name));
    $("image-name").textContent = name;
    showMessage("loading…");
    renderList();
    const [labels, bitmap] = await Promise.allSettled([api("GET", `/api/labels/${enc(name)}`), fetchBitmap(name)]);
    if (token !== state.loadToken) return; // the user has moved on
    const away = [labels, bitmap].find((r) => r.status === "rejected" && serverAway(r.reason));
    if (away) {
      // Not the file's fault: say so, and load again once the server is back.
      state.points = null;
      showMessage(`${away.reason.message} — trying again every ${RETRY_MS / 1000} s; nothing you did is lost`, true);
      refresh();
      setTimeout(() => { if (token === state.loadToken) openImage(name); }, RETRY_MS);
      return;
    }
    if (bitmap.status === "fulfilled") {
      if (state.bitmap) state.bitmap.close();
      state.bitmap = bitmap.value;
    }
    const problems = [];
    if (bitmap.status === "rejected") problems.push(bitmap.reason.message);
    if (labels.status === "fulfilled") {
      state.width = labels.value.width;
      state.height = labels.value.height;
      // An edit not yet written stays what the page shows; its version stays the one it was based on.
      if (unsaved.has(name)) state.points = copyPoints(unsaved.get(name).points);
      else {
        state.points = labels.value.points;
        versions.set(name, labels.value.version);
      }
      state.editable = bitmap.status === "fulfilled";
    } else {
      state.points = null;
      problems.push(labels.reason.message + " — fix or remove the file; editing is off for this image");
    }
    if (bitmap.status !== "fulfilled") state.bitmap = null;
    else if (labels.status !== "fulfilled") {
      state.width = state.bitmap.width;
      state.height = state.bitmap.height;
    }
    showMessage(problems.join("\n"), problems.length > 0);
    const sameSize = previousSize && previousSize[0] === state.width && previousSize[1] === state.height;
    if (!(state.keepView && sameSize && !state.view.fitted)) fitView();
    refresh();
    if (state.hasModel) loadSuggestions(name, token);
  }

  async function reloadBitmap() {
    if (!state.name) return;
    try {
      const bitmap = await fetchBitmap(state.name);
      if (state.bitmap) state.bitmap.close();
      state.bitmap = bitmap;
      draw();
    } catch (error) {
      showMessage(error.message, true);
    }
  }

  async function loadSuggestions(name, token) {
    try {
      const data = await api("GET", `/api/predictions/${enc(name)}`);
      if (token !== state.loadToken) return;
      state.suggestions = data.points;
    } catch (error) {
      if (token === state.loadToken) showMessage("model: " + error.message, true);
    }
    if (state.mode === "review") await loadReview();
    refresh();
  }

  async function loadReview() {
    if (!state.hasModel || !state.name) return;
    const name = state.name;
    try {
      const review = await api("GET", `/api/review/${enc(name)}`);
      const entry = state.images.find((e) => e.name === name);
      if (entry) entry.disagrees = review.labelled ? review.misses > 0 || review.false_alarms > 0 : null;
      if (name !== state.name) return;
      state.review = review;
    } catch (error) {
      showMessage("review: " + error.message, true);
    }
    refresh();
  }

  function passes(entry) {
    switch (state.filter) {
      case "unlabelled": return entry.status !== "labelled";
      case "targets": return entry.status === "labelled" && entry.count > 0;
      case "disagree": return entry.disagrees === true;
      default: return true;
    }
  }

  function step(direction) {
    const index = state.images.findIndex((e) => e.name === state.name);
    for (let k = index + direction; k >= 0 && k < state.images.length; k += direction) {
      if (passes(state.images[k])) return openImage(state.images[k].name);
    }
    showMessage(`no ${direction > 0 ? "next" : "previous"} image in this filter`, false, 1500);
  }

  // ----- view: fit, zoom, pan -------------------------------------------------------------

  function canvasSize() {
    const rect = canvas.getBoundingClientRect(); // fractional, unlike clientWidth
    return { width: rect.width, height: rect.height };
  }

  function fitView() {
    const { width, height } = canvasSize();
    const v = state.view;
    if (!state.width || !state.height || !width || !height) return;
    v.fit = Math.min(width / state.width, height / state.height);
    v.scale = v.fit;
    v.ox = (width - state.width * v.scale) / 2;
    v.oy = (height - state.height * v.scale) / 2;
    v.fitted = true;
  }

  function maxScale() {
    return Math.max(MAX_ZOOM * state.view.fit, MAX_ZOOM);
  }

  // Zoom by `factor` keeping the image point under (sx, sy) where it is.
  function zoomAt(sx, sy, factor) {
    const v = state.view;
    const scale = Math.min(Math.max(v.scale * factor, v.fit), maxScale());
    const k = scale / v.scale;
    v.ox = sx - (sx - v.ox) * k;
    v.oy = sy - (sy - v.oy) * k;
    v.scale = scale;
    v.fitted = scale === v.fit;
    if (v.fitted) fitView();
    draw();
    renderStatus();
  }

  function resizeCanvas() {
    const dpr = window.devicePixelRatio || 1;
    const { width, height } = canvasSize();
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    if (state.view.fitted) fitView();
    draw();
  }

  function toImage(event) {
    const rect = canvas.getBoundingClientRect();
    const sx = event.clientX - rect.left;
    const sy = event.clientY - rect.top;
    const v = state.view;
    return { sx, sy, x: (sx - v.ox) / v.scale - 0.5, y: (sy - v.oy) / v.scale - 0.5 };
  }

  function toScreen(x, y) {
    const v = state.view;
    return [v.ox + (x + 0.5) * v.scale, v.oy + (y + 0.5) * v.scale];
  }

  function onImage(x, y) {
    return x >= -0.5 && y >= -0.5 && x <= state.width - 0.5 && y <= state.height - 0.5;
  }

  // Clicks on the outer half of an edge pixel land on that pixel's centre: [0, W-1] x [0, H-1].
  function clampToImage(x, y) {
    return [Math.min(Math.max(x, 0), state.width - 1), Math.min(Math.max(y, 0), state.height - 1)];
  }

  // The pending suggestion whose ring (or centre) is under (sx, sy), nearest first.
  function suggestionAt(sx, sy, reach = Math.max(SUGGEST_RING, markerGap() + 4) + 3) {
    let best = null;
    let bestDist = reach;
    for (const s of pendingSuggestions()) {
      const [px, py] = toScreen(s.x, s.y);
      const d = Math.hypot(px - sx, py - sy);
      if (d <= bestDist) {
        best = s;
        bestDist = d;
      }
    }
    return best;
  }

  function pointAt(sx, sy) {
    let best = -1;
    let bestDist = HIT_RADIUS;
    (state.points || []).forEach(([x, y], i) => {
      const [px, py] = toScreen(x, y);
      const d = Math.hypot(px - sx, py - sy);
      if (d <= bestDist) {
        best = i;
        bestDist = d;
      }
    });
    return best;
  }

  // ----- mouse and keys ---------------------------------------------------------------------

  canvas.addEventListener("pointerdown", (event) => {
    canvas.focus();
    const p = toImage(event);
    if (event.button === 1 || (event.button === 0 && state.spaceDown)) {
      event.preventDefault();
      state.gesture = { kind: "pan", x: event.clientX, y: event.clientY, ox: state.view.ox, oy: state.view.oy };
      canvas.classList.add("panning");
      return;
    }
    if (event.button !== 0 || !state.editable) return;
    const hit = event.shiftKey ? -1 : pointAt(p.sx, p.sy); // Shift: always a new point, even beside another
    const ring = event.shiftKey || hit >= 0 || state.mode === "review" || state.hideMarkers ? null : suggestionAt(p.sx, p.sy);
    if (ring) {
      accept([ring]); // a click on a suggestion's ring takes it
      return;
    }
    if (hit >= 0) {
      const [x, y] = state.points[hit];
      state.selected = hit;
      state.gesture = { kind: "move", index: hit, before: copyPoints(state.points), added: false, moving: false,
        startX: event.clientX, startY: event.clientY, dx: x - p.x, dy: y - p.y };
    } else if (onImage(p.x, p.y)) {
      const before = copyPoints(state.points);
      remember(before);
      state.points = [...(before || []), clampToImage(p.x, p.y)];
      state.selected = state.points.length - 1;
      state.gesture = { kind: "move", index: state.selected, before, added: true, moving: true, dx: 0, dy: 0 };
    }
    refresh();
  });

  window.addEventListener("pointermove", (event) => {
    const g = state.gesture;
    if (g && g.kind === "pan") {
      state.view.ox = g.ox + event.clientX - g.x;
      state.view.oy = g.oy + event.clientY - g.y;
      state.view.fitted = false;
      draw();
      return;
    }
    if (g && g.kind === "move") {
      if (!g.moving && Math.hypot(event.clientX - g.startX, event.clientY - g.startY) >= DRAG_START) g.moving = true;
      if (g.moving) {
        const p = toImage(event);
        state.points[g.index] = clampToImage(p.x + g.dx, p.y + g.dy);
        draw();
        renderPanel();
      }
    }
    if (event.target === canvas && state.bitmap) {
      const p = toImage(event);
      state.cursor = onImage(p.x, p.y) ? [p.x, p.y] : null;
      state.cursorScreen = [p.sx, p.sy];
      const hover = g ? state.hover : pointAt(p.sx, p.sy);
      if (hover !== state.hover) {
        state.hover = hover;
        draw();
      }
      canvas.classList.toggle("over-point", hover >= 0 && !state.spaceDown);
      renderStatus();
    }
  });

  window.addEventListener("pointerup", () => {
    const g = state.gesture;
    state.gesture = null;
    canvas.classList.remove("panning");
    if (!g || g.kind !== "move") return;
    if (g.added) {
      save(); // history was recorded when the point was placed
    } else if (g.moving) {
      remember(g.before);
      save();
    }
    refresh();
  });

  canvas.addEventListener("mousedown", (event) => {
    if (event.button === 1) event.preventDefault(); // no auto-scroll: the middle button pans
  });

  canvas.addEventListener("contextmenu", (event) => {
    event.preventDefault();
    if (!state.editable) return;
    const p = toImage(event);
    const hit = pointAt(p.sx, p.sy);
    if (hit >= 0) removePoint(hit);
  });

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    if (!state.bitmap) return;
    const p = toImage(event);
    const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    zoomAt(p.sx, p.sy, Math.exp(-delta * WHEEL_SPEED));
  }, { passive: false });

  canvas.addEventListener("pointerleave", () => {
    state.cursor = null;
    state.cursorScreen = null;
    state.hover = -1;
    renderStatus();
    draw();
  });

  window.addEventListener("keydown", (event) => {
    const tag = event.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    if ($("conflict").open || $("help").open) return; // an open dialog takes the keys
    if (event.target.closest && event.target.closest("#image-list")) return; // the list's own keys
    const key = event.key;
    const ctrl = event.ctrlKey || event.metaKey;
    if (ctrl && key.toLowerCase() === "z") {
      event.preventDefault();
      event.shiftKey ? redo() : undo();
    } else if (ctrl && key.toLowerCase() === "y") {
      event.preventDefault();
      redo();
    } else if (ctrl || event.altKey) {
      return;
    } else if (key.startsWith("Arrow") && state.selected >= 0 && state.editable) {
      event.preventDefault(); // arrows nudge the selected point; Shift for a tenth of a pixel
      const d = event.shiftKey ? NUDGE / 10 : NUDGE;
      const [dx, dy] = { ArrowLeft: [-d, 0], ArrowRight: [d, 0], ArrowUp: [0, -d], ArrowDown: [0, d] }[key];
      const points = copyPoints(state.points);
      points[state.selected] = clampToImage(points[state.selected][0] + dx, points[state.selected][1] + dy);
      commit(points);
    } else if (key === "Escape") {
      state.selected = -1;
      refresh();
    } else if (key === "a" || key === "ArrowLeft") {
      step(-1);
    } else if (key === "d" || key === "ArrowRight") {
      step(1);
    } else if (key === "+" || key === "=" || key === "-") {
      const { width, height } = canvasSize();
      const [sx, sy] = state.cursorScreen || [width / 2, height / 2];
      if (state.bitmap) zoomAt(sx, sy, key === "-" ? 1 / KEY_ZOOM : KEY_ZOOM);
    } else if (key === "h") {
      state.hideMarkers = !state.hideMarkers;
      refresh();
    } else if (key === "s" && state.hasModel && state.editable) {
      const near = state.cursorScreen && suggestionAt(...state.cursorScreen, Infinity);
      if (near) accept([near]); // the suggestion nearest the cursor
    } else if (key === "?") {
      $("help").showModal();
    } else if (key === "l") {
      const current = $("image-list").querySelector("li.current") || $("image-list").querySelector("li");
      if (current) current.focus(); // the list, from the keyboard: arrows move, Enter opens
    } else if (key === "Delete" || key === "Backspace") {
      const target = state.selected >= 0 ? state.selected : state.hover;
      if (target >= 0) removePoint(target);
      event.preventDefault();
    } else if (key === "0") {
      noTarget();
    } else if (key === "f") {
      fitView();
      refresh();
    } else if (key === "r" && state.hasModel) {
      setMode(state.mode === "review" ? "annotate" : "review");
    } else if (key === " ") {
      event.preventDefault();
      state.spaceDown = true;
      canvas.classList.add("can-pan");
    }
  });

  window.addEventListener("keyup", (event) => {
    if (event.key === " ") {
      state.spaceDown = false;
      canvas.classList.remove("can-pan");
    }
  });

  window.addEventListener("beforeunload", (event) => {
    if (unsaved.size > 0) event.preventDefault();
  });

  // ----- actions ----------------------------------------------------------------------------

  function removePoint(index) {
    const points = copyPoints(state.points);
    points.splice(index, 1);
    state.selected = -1;
    state.hover = -1;
    commit(points);
  }

  function noTarget() {
    state.selected = -1;
    const removed = (state.points || []).length;
    commit([]);
    if (removed) offerUndo(`${removed} point${removed > 1 ? "s" : ""} removed: no target in this image.`);
  }

  // A change that throws away work says so where the labeller looks, with its undo at hand.
  let toastTimer = null;
  function offerUndo(text) {
    const name = state.name;
    $("toast-text").textContent = text;
    $("toast").hidden = false;
    $("toast-undo").onclick = () => {
      $("toast").hidden = true;
      if (state.name === name) undo();
    };
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { $("toast").hidden = true; }, UNDO_TOAST_MS);
  }

  // Suggestions already covered by a label (within the review's match distance) are not offered.
  function pendingSuggestions() {
    const labels = state.points || [];
    const floor = state.minScore ?? state.threshold;
    return state.suggestions
      .map((s, index) => ({ x: s[0], y: s[1], score: s[2], index }))
      .filter((s) => s.score >= floor && !labels.some(([x, y]) => Math.hypot(x - s.x, y - s.y) <= state.matchPx));
  }

  function accept(suggestions) {
    if (!suggestions.length) return;
    commit([...(copyPoints(state.points) || []), ...suggestions.map((s) => clampToImage(s.x, s.y))]);
  }

  function setMode(mode) {
    state.mode = mode;
    $("mode-annotate").classList.toggle("active", mode === "annotate");
    $("mode-review").classList.toggle("active", mode === "review");
    if (mode === "review") loadReview();
    refresh();
  }

  // ----- drawing ----------------------------------------------------------------------------

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#0d0e10";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!state.bitmap) return;
    const v = state.view;
    ctx.imageSmoothingEnabled = v.scale < 1; // zoomed in, pixels stay crisp squares
    ctx.drawImage(state.bitmap, v.ox, v.oy, state.width * v.scale, state.height * v.scale);
    if (v.scale >= 12) drawPixelGrid();
    if (state.hideMarkers) return;
    if (state.mode === "review") drawReview();
    else {
      pendingSuggestions().forEach((s) => drawSuggestion(s));
      (state.points || []).forEach(([x, y], i) => drawLabel(x, y, i === state.selected ? "selected" : "label", i === state.hover));
    }
  }

  function drawPixelGrid() {
    const v = state.view;
    const { width, height } = canvasSize();
    const x0 = Math.max(0, Math.floor(-v.ox / v.scale));
    const x1 = Math.min(state.width, Math.ceil((width - v.ox) / v.scale));
    const y0 = Math.max(0, Math.floor(-v.oy / v.scale));
    const y1 = Math.min(state.height, Math.ceil((height - v.oy) / v.scale));
    ctx.strokeStyle = "rgba(255, 255, 255, 0.12)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let i = x0; i <= x1; i++) {
      const sx = Math.round(v.ox + i * v.scale) + 0.5;
      ctx.moveTo(sx, v.oy + y0 * v.scale);
      ctx.lineTo(sx, v.oy + y1 * v.scale);
    }
    for (let j = y0; j <= y1; j++) {
      const sy = Math.round(v.oy + j * v.scale) + 0.5;
      ctx.moveTo(v.ox + x0 * v.scale, sy);
      ctx.lineTo(v.ox + x1 * v.scale, sy);
    }
    ctx.stroke();
  }

  function outlined(path, color, width = 1.5) {
    ctx.lineWidth = width + 2;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.75)";
    path();
    ctx.stroke();
    ctx.lineWidth = width;
    ctx.strokeStyle = color;
    path();
    ctx.stroke();
  }

  // A ring with a crosshair that stops short of the centre, so the target itself stays visible.
  // The crosshair starts 2 image pixels out (and at least 4 CSS px), so a target 2 pixels wide is
  // never under a mark at any zoom; h hides the marks altogether.
  function drawLabel(x, y, kind, hovered) {
    const [sx, sy] = toScreen(x, y);
    const color = kind === "selected" ? cssVar("--selected") : cssVar("--label");
    const gap = markerGap();
    const r = gap + (hovered ? 5 : 4);
    outlined(() => {
      ctx.beginPath();
      ctx.arc(sx, sy, r, 0, 2 * Math.PI);
      for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
        ctx.moveTo(sx + dx * gap, sy + dy * gap);
        ctx.lineTo(sx + dx * (r + 4), sy + dy * (r + 4));
      }
    }, color);
  }

  const markerGap = () => Math.max(4, 2 * state.view.scale); // CSS px from a point to its nearest mark

  function drawSuggestion(s) {
    const [sx, sy] = toScreen(s.x, s.y);
    ctx.setLineDash([3, 3]);
    outlined(() => {
      ctx.beginPath();
      ctx.arc(sx, sy, Math.max(SUGGEST_RING, markerGap() + 4), 0, 2 * Math.PI);
    }, cssVar("--suggest"));
    ctx.setLineDash([]);
    drawText(s.score.toFixed(2), sx + 13, sy - 8, cssVar("--suggest"));
  }

  function drawCross(sx, sy, size, color) {
    outlined(() => {
      ctx.beginPath();
      ctx.moveTo(sx - size, sy - size);
      ctx.lineTo(sx + size, sy + size);
      ctx.moveTo(sx + size, sy - size);
      ctx.lineTo(sx - size, sy + size);
    }, color, 2);
  }

  // Labels are drawn from the live point list, so edits show at once; their found / missed
  // marks come from the last review, until the next one arrives after the save.
  function drawReview() {
    const review = state.review;
    const points = state.points || [];
    const current = review && review.gt.length === points.length;
    points.forEach(([x, y], i) => {
      if (!current) return drawLabel(x, y, i === state.selected ? "selected" : "label", i === state.hover);
      const hit = review.gt[i][2];
      const [sx, sy] = toScreen(x, y);
      const color = cssVar(hit ? "--label" : "--miss");
      outlined(() => {
        ctx.beginPath();
        ctx.arc(sx, sy, hit ? 8 : 11, 0, 2 * Math.PI);
      }, color, hit ? 1.5 : 2.5);
      if (!hit) drawText("miss", sx + 14, sy - 8, color);
    });
    for (const [x, y, score, hit] of review ? review.pred : []) {
      const [sx, sy] = toScreen(x, y);
      const color = cssVar(hit ? "--pred" : "--fa");
      drawCross(sx, sy, hit ? 4 : 6, color);
      if (!hit) drawText(`FA ${score.toFixed(2)}`, sx + 10, sy + 16, color);
    }
  }

  function drawText(text, x, y, color) {
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
    ctx.strokeText(text, x, y);
    ctx.fillStyle = color;
    ctx.fillText(text, x, y);
  }

  const cssCache = {};
  function cssVar(name) {
    if (!(name in cssCache)) cssCache[name] = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return cssCache[name];
  }

  // ----- panels -----------------------------------------------------------------------------

  function refresh() {
    draw();
    renderPanel();
    renderStatus();
    renderButtons();
  }

  function renderList() {
    const list = $("image-list");
    const labelled = state.images.filter((e) => e.status === "labelled").length;
    const total = state.images.length;
    $("progress-text").textContent = `${labelled} / ${total} labelled`;
    $("progress-fill").style.width = total ? `${(100 * labelled) / total}%` : "0";
    const fragment = document.createDocumentFragment();
    for (const entry of state.images) {
      const shown = passes(entry);
      if (!shown && entry.name !== state.name) continue;
      const li = document.createElement("li");
      li.dataset.name = entry.name;
      li.classList.toggle("current", entry.name === state.name);
      li.classList.toggle("outside", !shown);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = entry.name;
      const badge = document.createElement("span");
      badge.className = `badge ${entry.status}` + (entry.disagrees ? " disagrees" : "");
      badge.textContent = entry.status === "labelled" ? String(entry.count) : entry.status === "invalid" ? "!" : "–";
      badge.title = entry.status === "labelled" ? `${entry.count} target(s)` : entry.status === "invalid" ? entry.error || "invalid label file" : "not labelled yet";
      li.append(name, badge);
      li.tabIndex = 0;
      li.addEventListener("click", () => openImage(entry.name));
      li.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          openImage(entry.name).then(() => canvas.focus());
        } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          const next = event.key === "ArrowDown" ? li.nextElementSibling : li.previousElementSibling;
          if (next) next.focus();
        } else if (event.key === "Escape") {
          canvas.focus();
        }
      });
      fragment.append(li);
    }
    list.replaceChildren(fragment);
    const current = list.querySelector("li.current");
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  function renderPanel() {
    const points = state.points || [];
    $("point-count").textContent = state.points === null ? "(no label file)" : `(${points.length})`;
    const list = $("point-list");
    const items = points.map(([x, y], i) => {
      const li = document.createElement("li");
      li.classList.toggle("selected", i === state.selected);
      const coords = document.createElement("span");
      coords.className = "coords";
      coords.textContent = `${i + 1}.  x ${x.toFixed(2)}  y ${y.toFixed(2)}`;
      const remove = button("×", "Remove this point", () => removePoint(i));
      li.append(coords, remove);
      li.addEventListener("click", () => {
        state.selected = i;
        refresh();
      });
      return li;
    });
    if (!items.length) items.push(emptyItem(state.points === null ? "Click on a target to add a point." : "No target in this image."));
    list.replaceChildren(...items);

    if (!state.hasModel) return;
    const pending = pendingSuggestions();
    $("suggestion-count").textContent = `(${pending.length})`;
    $("accept-all").disabled = !pending.length || !state.editable;
    $("accept-all").classList.toggle("primary", pending.length <= FEW_SUGGESTIONS); // many: look before taking them all
    $("min-score-value").textContent = (state.minScore ?? state.threshold).toFixed(2);
    const suggestions = pending.map((s) => {
      const li = document.createElement("li");
      const coords = document.createElement("span");
      coords.className = "coords";
      coords.textContent = `${s.score.toFixed(2)}  x ${s.x.toFixed(2)}  y ${s.y.toFixed(2)}`;
      const ok = button("Accept", "Add this point to the labels", () => accept([s]));
      ok.disabled = !state.editable;
      li.append(coords, ok);
      return li;
    });
    if (!suggestions.length) suggestions.push(emptyItem(state.suggestions.length ? "All suggestions are labelled." : "The model finds nothing here."));
    $("suggestion-list").replaceChildren(...suggestions);

    const review = state.review;
    $("review-summary").textContent = state.mode !== "review" ? "Switch to the review view to compare."
      : !review ? "computing…"
      : !review.labelled ? `Not labelled yet; the model finds ${review.pred.length} point(s).`
      : `${review.hits} found · ${review.misses} missed · ${review.false_alarms} false alarm(s) (within ${review.max_dist} px)`;
  }

  function renderStatus() {
    const c = state.cursor;
    $("cursor").textContent = c ? `x ${c[0].toFixed(2)}  y ${c[1].toFixed(2)}` : "\u00a0";
    const v = state.view;
    $("zoom").textContent = state.bitmap ? `zoom ×${(v.scale / v.fit).toFixed(1)} · ${v.scale.toFixed(1)} px/pixel` : "";
    const n = (state.points || []).length;
    $("count").textContent = !state.name ? "" : state.points === null ? "not labelled" : n === 0 ? "no target (0)" : `${n} point${n > 1 ? "s" : ""}`;
    $("count").textContent += state.width ? ` · ${state.width}×${state.height}` : "";
    $("count").textContent += state.hideMarkers ? " · marks hidden (h)" : "";
  }

  // "all saved" only when every edit of every image is on disk.
  function renderSaveStatus() {
    const status = $("save-status");
    const problem = conflicts.size ? `labels/${conflicts.keys().next().value}.txt changed elsewhere — choose which to keep`
      : refused.size ? refused.values().next().value : null;
    const images = unsaved.size > 1 ? ` (${unsaved.size} images)` : "";
    status.className = problem ? "failed" : unsaved.size ? "saving" : "saved";
    status.textContent = problem ? `not saved${images}: ${problem}` : unsaved.size ? `saving…${images}` : "all saved";
    status.title = problem ? "Kept in this page and sent again every few seconds; do not close it." : "";
  }

  function renderButtons() {
    const entry = histories.get(state.name) || { undo: [], redo: [] };
    $("undo").disabled = !state.editable || !entry.undo.length;
    $("redo").disabled = !state.editable || !entry.redo.length;
    $("no-target").disabled = !state.editable;
    const index = state.images.findIndex((e) => e.name === state.name);
    $("prev").disabled = index <= 0;
    $("next").disabled = index < 0 || index >= state.images.length - 1;
  }

  function button(text, title, onClick) {
    const b = document.createElement("button");
    b.textContent = text;
    b.title = title;
    b.addEventListener("click", (event) => {
      event.stopPropagation();
      onClick();
      b.blur();
    });
    return b;
  }

  function emptyItem(text) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = text;
    return li;
  }

  let messageTimer = null;
  function showMessage(text, isError = false, hideAfterMs = 0) {
    const box = $("message");
    clearTimeout(messageTimer);
    box.hidden = !text;
    box.textContent = text;
    box.classList.toggle("error", isError);
    if (hideAfterMs) messageTimer = setTimeout(() => (box.hidden = true), hideAfterMs);
  }

  // ----- wiring -----------------------------------------------------------------------------

  function onClick(id, action) {
    $(id).addEventListener("click", (event) => {
      action();
      event.currentTarget.blur(); // keys go back to the canvas, not to the button
    });
  }

  $("keep-view").checked = state.keepView;
  $("keep-view").addEventListener("change", () => {
    state.keepView = $("keep-view").checked;
    store("pinpoint.keepView", state.keepView ? "1" : "0");
    canvas.focus();
  });
  $("min-score").addEventListener("input", () => {
    state.minScore = Number($("min-score").value);
    refresh();
  });
  onClick("help-close", () => $("help").close());
  onClick("conflict-keep", () => resolveConflict(true));
  onClick("conflict-take", () => resolveConflict(false));
  $("conflict").addEventListener("cancel", (event) => event.preventDefault()); // Esc: the choice must be made
  onClick("prev", () => step(-1));
  onClick("next", () => step(1));
  onClick("undo", undo);
  onClick("redo", redo);
  onClick("no-target", noTarget);
  onClick("fit", () => {
    fitView();
    refresh();
  });
  onClick("accept-all", () => accept(pendingSuggestions()));
  onClick("mode-annotate", () => setMode("annotate"));
  onClick("mode-review", () => setMode("review"));
  $("contrast").addEventListener("change", (event) => {
    state.contrast = event.target.value;
    event.target.blur();
    reloadBitmap();
  });
  // The disagreement filter and the model's orders need its predictions on every image.
  async function predictAll() {
    showMessage("running the model on every image…");
    try {
      await loadList(true);
      showMessage("");
    } catch (error) {
      showMessage(error.message, true);
    }
  }
  $("sort").addEventListener("change", async (event) => {
    state.sort = event.target.value;
    event.target.blur();
    if (state.sort !== "name") await predictAll();
    sortImages();
    renderList();
  });
  onClick("train", startTraining);
  $("filter").addEventListener("change", async (event) => {
    state.filter = event.target.value;
    event.target.blur();
    if (state.filter === "disagree") await predictAll();
    renderList();
  });
  new ResizeObserver(resizeCanvas).observe($("stage"));

  // For tests and scripts: the current view, and a promise that settles once every save is done.
  window.pinpoint = {
    view: () => ({ ...state.view, width: state.width, height: state.height, name: state.name, editable: state.editable }),
    idle: async () => {
      while (sending) await sending;
      const problem = conflicts.size ? "conflict" : refused.size ? refused.values().next().value : null;
      return { pending: unsaved.size, error: problem };
    },
  };

  async function start() {
    try {
      await loadList();
    } catch (error) {
      showMessage(error.message, true);
      return;
    }
    renderSaveStatus();
    document.body.classList.toggle("can-train", state.canTrain);
    if (state.canTrain) followTraining(); // a run started before this page was (re)loaded
    if (!state.images.length) {
      showMessage(`no images in ${state.dataset}/images`, true);
      return;
    }
    const wanted = decodeURIComponent(location.hash.slice(1));
    const first = state.images.find((e) => e.name === wanted) || state.images.find((e) => e.status === "unlabelled") || state.images[0];
    await openImage(first.name);
    document.body.dataset.ready = "1";
  }

  start();
})();
