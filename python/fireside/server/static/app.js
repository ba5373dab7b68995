// The fireside chat page: conversations, the thread, the composer and per-conversation
// settings. Model text only ever reaches the DOM through textContent (see markdown.js).

import { ApiError, describeError, listDocs, listModelCards, loadModel, streamChat } from "./api.js";
import { hydrateIcons, icon } from "./icons.js";
import { renderMarkdown } from "./markdown.js";
import { initModels } from "./models.js";
import { loadState, newConversation, sanitizeReferences, saveState } from "./store.js";

const $ = (id) => document.getElementById(id);

const ui = {
  app: $("app"),
  sidebar: $("sidebar"),
  scrim: $("scrim"),
  list: $("conversation-list"),
  newChat: $("new-chat"),
  status: $("server-status"),
  statusLabel: $("server-status-label"),
  sidebarToggle: $("sidebar-toggle"),
  title: $("conversation-title"),
  modelBadge: $("model-badge"),
  settingsToggle: $("settings-toggle"),
  settingsClose: $("settings-close"),
  settings: $("settings"),
  notice: $("notice"),
  thread: $("thread"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  model: $("model-select"),
  modelsRefresh: $("models-refresh"),
  system: $("system-prompt"),
  temperature: $("temperature"),
  temperatureValue: $("temperature-value"),
  maxTokens: $("max-tokens"),
  docsList: $("docs-list"),
  docsHint: $("docs-hint"),
  maxTokensError: $("max-tokens-error"),
  apiKey: $("api-key"),
  modelsToggle: $("models-toggle"),
  modelsView: $("models-view"),
};

const state = {
  conversations: [],
  activeId: null,
  apiKey: "",
  models: [], // ids from /v1/models
  loaded: new Set(), // the ids of those in memory now (others load on first use)
  loading: null, // the id of a model being loaded for the active conversation
  modelsError: null, // describeError() result when the list could not be fetched
  docs: undefined, // [{id, documents, chunks}] from /v1/docs; null when it could not be listed
  streaming: null, // {conversationId, reply, controller, node} while a reply streams
  renaming: null, // conversation id being renamed
  confirmingDelete: null, // conversation id waiting for delete confirmation
};

// ---------------------------------------------------------------- persistence

function active() {
  return state.conversations.find((c) => c.id === state.activeId) || null;
}

function persist() {
  const problem = saveState(state);
  if (problem) showNotice(problem);
}

function showNotice(text) {
  ui.notice.replaceChildren(icon("alert"), document.createTextNode(text));
  ui.notice.hidden = false;
}

function titleFrom(text) {
  const line = text.trim().split("\n")[0].replace(/\s+/g, " ");
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "New chat";
}

// ---------------------------------------------------------------- conversation list

function renderList() {
  const sorted = [...state.conversations].sort((a, b) => b.updated - a.updated);
  const items = sorted.map((conversation) => {
    const li = document.createElement("li");
    li.className = "conv-item";
    li.dataset.id = conversation.id;
    if (conversation.id === state.activeId) {
      li.classList.add("active");
      li.setAttribute("aria-current", "true");
    }
    if (state.streaming && state.streaming.conversationId === conversation.id) {
      li.classList.add("busy");
    }
    if (state.renaming === conversation.id) {
      li.append(renameInput(conversation));
      return li;
    }
    const open = document.createElement("button");
    open.type = "button";
    open.className = "conv-open";
    open.textContent = conversation.title;
    open.title = conversation.title;
    open.addEventListener("click", () => selectConversation(conversation.id));
    open.addEventListener("dblclick", () => startRename(conversation.id));
    const actions = document.createElement("div");
    actions.className = "conv-actions";
    if (state.confirmingDelete === conversation.id) {
      li.classList.add("confirming");
      actions.append(
        textButton("Delete", "conv-delete-confirm danger", () => deleteConversation(conversation.id)),
        textButton("Keep", "conv-delete-cancel", () => {
          state.confirmingDelete = null;
          renderList();
        }),
      );
    } else {
      actions.append(
        iconButton("pencil", "Rename", "conv-rename", () => startRename(conversation.id)),
        iconButton("trash", "Delete", "conv-delete", () => {
          state.confirmingDelete = conversation.id;
          renderList();
        }),
      );
    }
    li.append(open, actions);
    return li;
  });
  ui.list.replaceChildren(...items);
}

function textButton(label, className, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = label;
  button.addEventListener("click", onClick);
  return button;
}

function iconButton(name, label, className, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `icon-btn ${className}`;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.append(icon(name));
  button.addEventListener("click", onClick);
  return button;
}

function renameInput(conversation) {
  const input = document.createElement("input");
  input.className = "conv-rename-input";
  input.value = conversation.title;
  input.setAttribute("aria-label", "Conversation name");
  input.maxLength = 200;
  let done = false;
  const finish = (commit) => {
    if (done) return;
    done = true;
    const value = input.value.trim();
    if (commit && value) {
      conversation.title = value;
      persist();
    }
    state.renaming = null;
    renderList();
    renderHeader();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") finish(true);
    if (event.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
  requestAnimationFrame(() => {
    input.focus();
    input.select();
  });
  return input;
}

function startRename(id) {
  state.renaming = id;
  state.confirmingDelete = null;
  renderList();
}

function deleteConversation(id) {
  if (state.streaming && state.streaming.conversationId === id) {
    state.streaming.controller.abort();
  }
  state.conversations = state.conversations.filter((c) => c.id !== id);
  state.confirmingDelete = null;
  if (state.activeId === id) {
    const next = [...state.conversations].sort((a, b) => b.updated - a.updated)[0];
    state.activeId = next ? next.id : null;
  }
  ensureConversation();
  persist();
  renderAll();
}

function selectConversation(id) {
  state.activeId = id;
  state.confirmingDelete = null;
  persist();
  renderAll();
  closeSidebar();
  ui.prompt.focus();
}

function startNewConversation() {
  const current = active();
  if (current && current.messages.length === 0) {
    ui.prompt.focus(); // the current chat is still empty: reuse it
    closeSidebar();
    return;
  }
  const conversation = newConversation(current ? current.settings : undefined);
  if (!conversation.settings.model && state.models.length) {
    conversation.settings.model = state.models[0];
  }
  state.conversations.push(conversation);
  state.activeId = conversation.id;
  persist();
  renderAll();
  closeSidebar();
  ui.prompt.focus();
}

function ensureConversation() {
  if (!active()) {
    const latest = [...state.conversations].sort((a, b) => b.updated - a.updated)[0];
    if (latest) {
      state.activeId = latest.id;
    } else {
      const conversation = newConversation();
      state.conversations.push(conversation);
      state.activeId = conversation.id;
    }
  }
}

// ---------------------------------------------------------------- thread

function renderHeader() {
  const conversation = active();
  ui.title.textContent = conversation ? conversation.title : "fireside";
  document.title = conversation && conversation.messages.length
    ? `${conversation.title} · fireside`
    : "fireside";
  const model = conversation && (conversation.settings.model || state.models[0]);
  const loading = Boolean(model) && state.loading === model;
  ui.modelBadge.textContent = loading ? `${model} · loading…` : model || "";
  ui.modelBadge.dataset.state = loading ? "loading" : state.loaded.has(model) ? "loaded" : "idle";
  ui.modelBadge.hidden = !model;
}

// ---------------------------------------------------------------- models

const modelsView = initModels({
  root: ui.modelsView,
  apiKey: () => state.apiKey,
  currentModel: () => {
    const conversation = active();
    return conversation ? conversation.settings.model : null;
  },
  onUse: (id) => useModel(id),
  onChange: () => refreshModels(),
  onToggle: (open) => {
    ui.app.classList.toggle("models-open", open);
    ui.modelsToggle.setAttribute("aria-expanded", String(open));
  },
});

/** The header says "loading…" while a model not in memory is loaded for a reply. */
function markLoading(model) {
  if (state.models.includes(model) && !state.loaded.has(model)) {
    state.loading = model;
    renderHeader();
  }
}

function modelReady(model) {
  state.loaded.add(model);
  if (state.loading === model) state.loading = null;
  renderHeader();
}

/** Choose `id` for the active conversation; a model not in memory is loaded now, with the
 * header saying so (a loaded one is switched to at once). */
async function useModel(id) {
  const conversation = active();
  if (!conversation || !id) return;
  conversation.settings.model = id;
  persist();
  renderSettings();
  if (state.loaded.has(id) || !state.models.includes(id)) {
    renderHeader();
    return;
  }
  state.loading = id;
  renderHeader();
  try {
    await loadModel(id, { apiKey: state.apiKey });
    state.loaded.add(id);
  } catch (err) {
    const problem = describeError(err);
    showNotice(`${id} could not be loaded: ${problem.detail}`);
  } finally {
    if (state.loading === id) state.loading = null;
    renderHeader();
    renderSettings();
  }
}

function renderThread() {
  const conversation = active();
  const nodes = [];
  if (!conversation || conversation.messages.length === 0) {
    nodes.push(emptyState());
  } else {
    conversation.messages.forEach((message, index) => {
      nodes.push(messageNode(message, index, conversation));
    });
  }
  ui.thread.replaceChildren(...nodes);
  if (state.streaming && conversation && state.streaming.conversationId === conversation.id) {
    state.streaming.node = ui.thread.querySelector(".message.streaming");
  }
  scrollToBottom(true);
}

function emptyState() {
  const box = document.createElement("div");
  box.className = "empty";
  const logo = document.createElement("img");
  logo.src = "static/favicon.svg";
  logo.alt = "";
  logo.className = "empty-logo";
  const heading = document.createElement("h2");
  heading.textContent = "What shall we talk about?";
  const hint = document.createElement("p");
  const conversation = active();
  const model = conversation && (conversation.settings.model || state.models[0]);
  if (model) {
    hint.textContent = `Chatting with ${model}, running on this computer.`;
  } else if (state.modelsError) {
    hint.textContent = `${state.modelsError.title}. ${state.modelsError.detail}`;
  } else {
    hint.textContent = "Everything stays on this computer.";
  }
  box.append(logo, heading, hint);
  return box;
}

function messageNode(message, index, conversation) {
  const article = document.createElement("article");
  article.className = `message ${message.role}`;
  article.dataset.index = String(index);
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  if (message.role === "error") {
    const head = document.createElement("div");
    head.className = "error-title";
    head.append(icon("alert"), document.createTextNode(message.title || "Error"));
    const detail = document.createElement("p");
    detail.className = "error-detail";
    detail.textContent = message.content;
    bubble.append(head, detail);
    const isLast = index === conversation.messages.length - 1;
    if (isLast && !state.streaming) {
      const again = textButton("Retry", "retry-btn", () => retry(conversation));
      again.prepend(icon("refresh"));
      bubble.append(again);
    }
    article.append(bubble);
    return article;
  }
  const content = document.createElement("div");
  content.className = message.role === "assistant" ? "content markdown" : "content plain";
  bubble.append(content);
  const isStreaming = state.streaming && state.streaming.reply === message;
  if (isStreaming) {
    article.classList.add("streaming");
    article.setAttribute("aria-busy", "true"); // screen readers wait for the whole reply
  }
  if (message.role === "assistant") fillThinking(bubble, message, isStreaming);
  fillContent(content, message, isStreaming);
  if (message.role === "assistant" && message.references && message.references.length) {
    bubble.append(sourcesNode(message.references));
  }
  if (message.role === "assistant") {
    const meta = document.createElement("div");
    meta.className = "meta";
    if (message.stats) {
      for (const part of statsParts(message.stats)) {
        const span = document.createElement("span");
        span.textContent = part;
        meta.append(span);
      }
    }
    bubble.append(meta);
  }
  article.append(bubble);
  return article;
}

/** Where a reference lies, in words: "page 3 · § Heading · lines 14-26". */
function whereText(location) {
  const parts = [];
  if (location.page != null) parts.push(`page ${location.page}`);
  if (location.heading) parts.push(`§ ${location.heading}`);
  if (location.lines) {
    const [first, last] = location.lines;
    parts.push(last == null || last === first ? `line ${first}` : `lines ${first}-${last}`);
  }
  return parts.join(" · ");
}

/** The numbered sources under an answer; each opens to show its excerpt (as text). */
function sourcesNode(references) {
  const section = document.createElement("section");
  section.className = "sources";
  section.setAttribute("aria-label", "Sources");
  const heading = document.createElement("h3");
  heading.className = "sources-title";
  heading.textContent = "Sources";
  const list = document.createElement("ol");
  list.className = "sources-list";
  references.forEach((ref, i) => {
    const item = document.createElement("li");
    item.className = "source";
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const number = document.createElement("span");
    number.className = "source-number";
    number.textContent = `[${ref.number ?? i + 1}]`;
    const file = document.createElement("span");
    file.className = "source-file";
    file.textContent = ref.file;
    if (ref.source) file.title = ref.source;
    summary.append(number, " ", file);
    const where = whereText(ref.location);
    if (where) {
      const place = document.createElement("span");
      place.className = "source-where";
      place.textContent = where;
      summary.append(" ", place);
    }
    const excerpt = document.createElement("blockquote");
    excerpt.className = "source-excerpt";
    excerpt.textContent = ref.excerpt;
    details.append(summary, excerpt);
    item.append(details);
    list.append(item);
  });
  section.append(heading, list);
  return section;
}

/**
 * A reasoning model's thinking (the stream's reasoning_content), dimmed and folded above
 * the answer: open while the model is still thinking, closed once the answer begins (the
 * reader's own toggle is kept after that). Shown as text, never as HTML.
 */
function fillThinking(bubble, message, isStreaming) {
  let details = bubble.querySelector(":scope > details.thinking");
  if (!message.reasoning) {
    if (details) details.remove();
    return;
  }
  if (!details) {
    details = document.createElement("details");
    details.className = "thinking";
    const summary = document.createElement("summary");
    summary.textContent = "Thinking";
    const text = document.createElement("div");
    text.className = "thinking-text";
    details.append(summary, text);
    bubble.prepend(details);
    details.open = Boolean(isStreaming && !message.content);
  } else if (isStreaming && message.content && details.dataset.auto !== "closed") {
    details.open = false;
    details.dataset.auto = "closed";
  }
  details.querySelector(".thinking-text").textContent = message.reasoning;
  const summary = details.querySelector("summary");
  summary.textContent = isStreaming && !message.content ? "Thinking…" : "Thinking";
}

function fillContent(content, message, isStreaming) {
  if (message.role !== "assistant") {
    content.textContent = message.content;
    if (message.content.length > LONG_MESSAGE) clamp(content);
    return;
  }
  if (isStreaming && !message.content && message.reasoning) {
    content.replaceChildren(); // the thinking block shows progress
    return;
  }
  if (isStreaming && !message.content) {
    const dots = document.createElement("span");
    dots.className = "typing";
    dots.setAttribute("aria-label", "The model is thinking");
    dots.append(document.createElement("i"), document.createElement("i"), document.createElement("i"));
    content.replaceChildren(dots);
    return;
  }
  content.replaceChildren(renderMarkdown(message.content, { onCopy: copyCode }));
  if (isStreaming) {
    const caret = document.createElement("span");
    caret.className = "caret";
    let target = content.lastElementChild || content;
    if (target.classList.contains("code-block")) target = target.querySelector("code");
    else if (/^(UL|OL)$/.test(target.nodeName) && target.lastElementChild) {
      target = target.lastElementChild;
    }
    target.append(caret);
  }
}

const LONG_MESSAGE = 1200; // characters; longer user messages start folded

function clamp(content) {
  content.classList.add("clamped");
  const toggle = textButton("Show all", "unclamp-btn", () => {
    const folded = content.classList.toggle("clamped");
    toggle.textContent = folded ? "Show all" : "Show less";
  });
  content.after(toggle);
}

function statsParts(stats) {
  const parts = [];
  if (Number.isFinite(stats.completion_tokens)) {
    const approx = stats.usage ? "" : "~";
    parts.push(`${approx}${stats.completion_tokens} tokens`);
  }
  if (Number.isFinite(stats.tokens_per_second)) {
    parts.push(`${stats.tokens_per_second.toFixed(1)} tok/s`);
  }
  if (Number.isFinite(stats.prompt_tokens)) parts.push(`prompt ${stats.prompt_tokens} tokens`);
  if (Number.isFinite(stats.first_token_ms)) {
    parts.push(`first token ${(stats.first_token_ms / 1000).toFixed(2)} s`);
  }
  if (stats.finish === "stopped") parts.push("stopped");
  else if (stats.finish === "length") parts.push("hit max tokens");
  if (stats.model) parts.push(stats.model);
  return parts;
}

let renderPending = false;

/** Re-render the streaming reply at most once per frame. */
function scheduleStreamRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    const s = state.streaming;
    if (!s || s.conversationId !== state.activeId || !s.node) return;
    const stick = nearBottom();
    fillThinking(s.node.querySelector(".bubble"), s.reply, true);
    fillContent(s.node.querySelector(".content"), s.reply, true);
    if (stick) scrollToBottom(true);
  });
}

function nearBottom() {
  const t = ui.thread;
  return t.scrollHeight - t.scrollTop - t.clientHeight < 120;
}

function scrollToBottom(force) {
  if (force || nearBottom()) ui.thread.scrollTop = ui.thread.scrollHeight;
}

async function copyCode(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // Clipboard API refused (permissions, insecure origin): fall back to a selection copy.
    const area = document.createElement("textarea");
    area.value = text;
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
  }
  button.textContent = ok ? "Copied" : "Copy failed";
  button.classList.toggle("done", ok);
  setTimeout(() => {
    button.textContent = "Copy";
    button.classList.remove("done");
  }, 1500);
}

// ---------------------------------------------------------------- settings

function renderSettings() {
  const conversation = active();
  if (!conversation) return;
  const s = conversation.settings;
  const ids = [...state.models];
  if (s.model && !ids.includes(s.model)) ids.unshift(s.model);
  const options = ids.map((id) => {
    const option = document.createElement("option");
    option.value = id;
    option.textContent = !state.models.includes(id) && state.models.length
      ? `${id} (not loaded)`
      : state.loaded.has(id) || !state.models.length
        ? id
        : `${id} (loads when used)`;
    return option;
  });
  if (!ids.length) {
    const option = document.createElement("option");
    option.value = "";
    option.textContent = state.modelsError ? "Server unreachable" : "Loading models…";
    options.push(option);
  }
  ui.model.replaceChildren(...options);
  ui.model.value = s.model || ids[0] || "";
  ui.system.value = s.system;
  ui.temperature.value = String(s.temperature);
  ui.temperatureValue.textContent = Number(s.temperature).toFixed(2);
  ui.maxTokens.value = s.max_tokens == null ? "" : String(s.max_tokens);
  setMaxTokensError(null);
  renderDocsPicker(conversation);
  ui.apiKey.value = state.apiKey;
}

/** One checkbox per collection the server exposes (plus any chosen earlier, marked). */
function renderDocsPicker(conversation) {
  const chosen = conversation.settings.docs;
  const served = state.docs || [];
  const names = served.map((c) => c.id);
  for (const name of chosen) if (!names.includes(name)) names.push(name);
  const rows = names.map((name) => {
    const info = served.find((c) => c.id === name);
    const label = document.createElement("label");
    label.className = "docs-option";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = name;
    box.checked = chosen.includes(name);
    box.addEventListener("change", () => {
      const current = active();
      const set = new Set(current.settings.docs);
      if (box.checked) set.add(name);
      else set.delete(name);
      current.settings.docs = [...set];
      persist();
    });
    const text = document.createElement("span");
    text.className = "docs-name";
    text.textContent = name;
    const count = document.createElement("small");
    if (info && info.documents != null) {
      count.textContent = ` ${info.documents} document${info.documents === 1 ? "" : "s"}`;
    } else if (state.docs) {
      count.textContent = " (not served)";
    }
    label.append(box, text, count);
    return label;
  });
  ui.docsList.replaceChildren(...rows);
  if (state.docs === undefined) {
    ui.docsHint.textContent = "Loading the server's collections…";
  } else if (state.docs === null) {
    ui.docsHint.textContent = "The server's collections could not be listed.";
  } else if (!served.length) {
    ui.docsHint.textContent =
      "This server exposes no collections. Start it with fireside serve --docs NAME.";
  } else {
    ui.docsHint.textContent = "Answers then cite the excerpts they used.";
  }
}

function setMaxTokensError(text) {
  ui.maxTokensError.textContent = text || "";
  ui.maxTokensError.hidden = !text;
  ui.maxTokens.setAttribute("aria-invalid", text ? "true" : "false");
}

/** Parse the max-tokens field: {value} (null = server default) or {error}. */
function readMaxTokens() {
  const raw = ui.maxTokens.value.trim();
  if (raw === "") return { value: null };
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    return { error: `Max tokens must be a whole number of at least 1, not "${raw}".` };
  }
  return { value: n };
}

function toggleSettings(open) {
  const show = open ?? ui.settings.hidden;
  ui.settings.hidden = !show;
  ui.settingsToggle.setAttribute("aria-expanded", String(show));
  ui.app.classList.toggle("settings-open", show);
}

function bindSettings() {
  ui.model.addEventListener("change", () => useModel(ui.model.value));
  ui.system.addEventListener("input", () => {
    active().settings.system = ui.system.value;
    persist();
  });
  ui.temperature.addEventListener("input", () => {
    const value = Number(ui.temperature.value);
    active().settings.temperature = value;
    ui.temperatureValue.textContent = value.toFixed(2);
    persist();
  });
  ui.maxTokens.addEventListener("input", () => {
    const parsed = readMaxTokens();
    setMaxTokensError(parsed.error);
    if (!parsed.error) {
      active().settings.max_tokens = parsed.value;
      persist();
    }
  });
  ui.apiKey.addEventListener("change", () => {
    state.apiKey = ui.apiKey.value.trim();
    persist();
    refreshModels();
  });
  ui.modelsRefresh.addEventListener("click", () => refreshModels());
  ui.modelsToggle.addEventListener("click", () =>
    modelsView.isOpen() ? modelsView.close() : modelsView.open(),
  );
  ui.settings.addEventListener("submit", (event) => event.preventDefault());
  ui.settingsToggle.addEventListener("click", () => toggleSettings());
  ui.settingsClose.addEventListener("click", () => toggleSettings(false));
}

// ---------------------------------------------------------------- server

function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.statusLabel.textContent = text;
}

async function refreshModels() {
  setStatus("pending", "Connecting…");
  try {
    const cards = await listModelCards({ apiKey: state.apiKey });
    state.models = cards.map((m) => m.id);
    state.loaded = new Set(cards.filter((m) => m.loaded).map((m) => m.id));
    state.modelsError = null;
    const n = state.models.length;
    setStatus(n ? "ok" : "warn", n ? `Connected · ${n} model${n === 1 ? "" : "s"}` : "No model downloaded");
    if (!n && !modelsView.isOpen()) modelsView.open(); // first run: choose a model
  } catch (err) {
    state.models = [];
    state.modelsError = describeError(err);
    setStatus("down", state.modelsError.title);
  }
  const conversation = active();
  if (conversation && !conversation.settings.model && state.models.length) {
    conversation.settings.model = state.models[0];
    persist();
  }
  renderSettings();
  renderHeader();
  if (conversation && conversation.messages.length === 0) renderThread();
  await refreshDocs();
}

/** Fetch the collections the server exposes, then redraw the picker. */
async function refreshDocs() {
  try {
    state.docs = await listDocs({ apiKey: state.apiKey });
  } catch {
    state.docs = null; // an older server, or unreachable: the picker says so
  }
  const conversation = active();
  if (conversation) renderDocsPicker(conversation);
}

// ---------------------------------------------------------------- sending

function setBusy(busy) {
  document.body.dataset.streaming = busy ? "true" : "false";
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.prompt.disabled = busy;
  if (!busy) ui.prompt.focus();
}

function send() {
  if (state.streaming) return;
  const text = ui.prompt.value;
  if (!text.trim()) return;
  const conversation = active();
  const maxTokens = readMaxTokens();
  if (maxTokens.error) {
    setMaxTokensError(maxTokens.error);
    toggleSettings(true);
    ui.maxTokens.focus();
    return;
  }
  // An error left at the end of the thread is replaced by the new attempt.
  dropTrailingErrors(conversation);
  conversation.messages.push({ role: "user", content: text });
  if (conversation.title === "New chat") conversation.title = titleFrom(text);
  conversation.updated = Date.now();
  ui.prompt.value = "";
  autosize();
  persist();
  generate(conversation);
}

function retry(conversation) {
  if (state.streaming) return;
  dropTrailingErrors(conversation);
  generate(conversation);
}

function dropTrailingErrors(conversation) {
  while (conversation.messages.length && conversation.messages.at(-1).role === "error") {
    conversation.messages.pop();
  }
}

function requestMessages(conversation) {
  const messages = [];
  const system = conversation.settings.system.trim();
  if (system) messages.push({ role: "system", content: system });
  for (const m of conversation.messages) {
    if (m.role === "user" || (m.role === "assistant" && m.content)) {
      messages.push({ role: m.role, content: m.content });
    }
  }
  return messages;
}

async function generate(conversation) {
  if (!state.models.length) await refreshModels();
  const settings = conversation.settings;
  const model = settings.model || state.models[0];
  if (!model) {
    const problem = state.modelsError || {
      title: "No model is loaded",
      detail: "The server offers no models. Start it with one: fireside serve MODEL.",
    };
    conversation.messages.push({ role: "error", title: problem.title, content: problem.detail });
    persist();
    renderAll();
    return;
  }
  const body = { model, messages: requestMessages(conversation), temperature: settings.temperature };
  if (settings.max_tokens != null) body.max_tokens = settings.max_tokens;
  // Collections chosen here but no longer served are left out (the picker marks them).
  const docs = settings.docs.filter((name) => !state.docs || state.docs.some((c) => c.id === name));
  if (docs.length) body.docs = docs;

  const reply = { role: "assistant", content: "" };
  conversation.messages.push(reply);
  const controller = new AbortController();
  state.streaming = { conversationId: conversation.id, reply, controller, node: null };
  setBusy(true);
  renderAll();

  const started = performance.now();
  let firstAt = null;
  let lastAt = null;
  let pieces = 0;
  let usage = null;
  let finish = null;
  let failure = null;
  markLoading(model); // the server loads a model not in memory before it answers
  try {
    for await (const chunk of streamChat(body, { apiKey: state.apiKey, signal: controller.signal })) {
      if (state.loading === model) modelReady(model);
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      const thought = choice.delta && choice.delta.reasoning_content;
      if (thought) {
        lastAt = performance.now();
        if (firstAt === null) firstAt = lastAt;
        pieces += 1;
        reply.reasoning = (reply.reasoning || "") + thought;
        scheduleStreamRender();
      }
      const piece = choice.delta && choice.delta.content;
      if (piece) {
        lastAt = performance.now();
        if (firstAt === null) firstAt = lastAt;
        pieces += 1;
        reply.content += piece;
        scheduleStreamRender();
      }
      if (choice.finish_reason) finish = choice.finish_reason;
      if (Array.isArray(choice.references)) reply.references = sanitizeReferences(choice.references);
    }
  } catch (err) {
    if (err && err.name === "AbortError") finish = "stopped";
    else failure = err;
  }
  if (state.loading === model) {
    state.loading = null;
    renderHeader();
  }

  const stats = { model, finish, usage: Boolean(usage) };
  if (usage) {
    stats.completion_tokens = usage.completion_tokens;
    stats.prompt_tokens = usage.prompt_tokens;
  } else if (pieces) {
    stats.completion_tokens = pieces; // one streamed piece is about one token
  }
  if (firstAt !== null) stats.first_token_ms = firstAt - started;
  const generated = stats.completion_tokens;
  if (firstAt !== null && lastAt > firstAt && generated > 1) {
    stats.tokens_per_second = (generated - 1) / ((lastAt - firstAt) / 1000);
  }
  reply.stats = stats;
  if (!reply.content && !reply.reasoning) {
    conversation.messages.splice(conversation.messages.indexOf(reply), 1);
  }
  if (failure) {
    const problem = describeError(failure);
    conversation.messages.push({ role: "error", title: problem.title, content: problem.detail });
    if (failure instanceof ApiError && failure.status === 404) refreshModels();
  }
  conversation.updated = Date.now();
  state.streaming = null;
  persist();
  setBusy(false);
  renderAll();
}

function stop() {
  if (state.streaming) state.streaming.controller.abort();
}

// ---------------------------------------------------------------- composer & layout

function autosize() {
  ui.prompt.style.height = "auto";
  ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight, 240)}px`;
}

function bindComposer() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  ui.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  ui.prompt.addEventListener("input", autosize);
  ui.stop.addEventListener("click", stop);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.streaming && !event.target.closest(".conv-item")) stop();
  });
  ui.newChat.addEventListener("click", startNewConversation);
  ui.sidebarToggle.addEventListener("click", () => {
    ui.app.classList.add("sidebar-open");
    ui.scrim.hidden = false;
  });
  ui.scrim.addEventListener("click", closeSidebar);
}

function closeSidebar() {
  ui.app.classList.remove("sidebar-open");
  ui.scrim.hidden = true;
}

function renderAll() {
  renderList();
  renderHeader();
  renderThread();
  renderSettings();
}

function reportCrash(message) {
  // Never leave a blank page: show what broke where the conversation would be.
  showNotice(`The page hit an unexpected error: ${message}. Reloading may help.`);
}

function main() {
  window.addEventListener("error", (event) => reportCrash(event.message));
  window.addEventListener("unhandledrejection", (event) =>
    reportCrash(String((event.reason && event.reason.message) || event.reason)),
  );
  hydrateIcons();
  const loaded = loadState();
  state.conversations = loaded.conversations;
  state.activeId = loaded.activeId;
  state.apiKey = loaded.apiKey;
  if (loaded.problem) showNotice(loaded.problem);
  ensureConversation();
  bindComposer();
  bindSettings();
  setBusy(false);
  renderAll();
  refreshModels();
}

main();
