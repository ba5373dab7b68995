// Conversations kept in the browser's localStorage, so they survive reloads.
//
// Shape (version 1):
//   {version: 1, activeId, apiKey,
//    conversations: [{id, title, created, updated,
//                     settings: {model, system, temperature, max_tokens, docs},
//                     messages: [{role: "user"|"assistant"|"error", content, stats?, title?,
//                                 references?, reasoning?}]}]}
// settings.docs: the names of the document collections answers use (none: []).
// references (assistant): the excerpts an answer cited, as /v1/chat/completions sent them:
//   [{number, collection, file, source, title, location: {page, heading, lines}, excerpt}]
// reasoning (assistant): a thinking model's reasoning_content, shown folded above the answer
//   and never sent back to the model.
// "error" messages are shown in the thread but never sent to the model.

export const STORAGE_KEY = "fireside.chat.v1";

export const DEFAULT_SETTINGS = Object.freeze({
  model: "",
  system: "",
  temperature: 0.7,
  max_tokens: 512,
  docs: Object.freeze([]),
});

const MAX_REFERENCES = 50;

/** A reference kept only with the fields the page shows, each of the expected type. */
export function sanitizeReference(r) {
  if (!r || typeof r !== "object") return null;
  const text = (v) => (typeof v === "string" ? v : null);
  const int = (v) => (Number.isInteger(v) ? v : null);
  const where = r.location && typeof r.location === "object" ? r.location : {};
  const lines = Array.isArray(where.lines) && where.lines.every(Number.isInteger)
    ? where.lines.slice(0, 2)
    : null;
  return {
    number: int(r.number),
    collection: text(r.collection),
    file: text(r.file) || text(r.source) || "document",
    source: text(r.source),
    title: text(r.title),
    location: { page: int(where.page), heading: text(where.heading), lines },
    excerpt: text(r.excerpt) || "",
  };
}

export function sanitizeReferences(list) {
  if (!Array.isArray(list)) return [];
  return list.slice(0, MAX_REFERENCES).map(sanitizeReference).filter(Boolean);
}

function newId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `c${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
}

/** A fresh conversation, optionally inheriting settings (say, from the current one). */
export function newConversation(settings = DEFAULT_SETTINGS) {
  const now = Date.now();
  return {
    id: newId(),
    title: "New chat",
    created: now,
    updated: now,
    settings: { ...DEFAULT_SETTINGS, ...settings, docs: [...(settings.docs || [])] },
    messages: [],
  };
}

function sanitizeMessage(m) {
  if (!m || typeof m !== "object") return null;
  if (!["user", "assistant", "error"].includes(m.role)) return null;
  const out = { role: m.role, content: typeof m.content === "string" ? m.content : "" };
  if (m.stats && typeof m.stats === "object") out.stats = m.stats;
  if (typeof m.title === "string") out.title = m.title;
  if (m.role === "assistant" && typeof m.reasoning === "string" && m.reasoning) {
    out.reasoning = m.reasoning;
  }
  if (m.role === "assistant" && Array.isArray(m.references) && m.references.length) {
    out.references = sanitizeReferences(m.references);
  }
  return out;
}

function sanitizeConversation(c) {
  if (!c || typeof c !== "object" || typeof c.id !== "string") return null;
  const settings = { ...DEFAULT_SETTINGS, docs: [] };
  const s = c.settings || {};
  if (typeof s.model === "string") settings.model = s.model;
  if (typeof s.system === "string") settings.system = s.system;
  if (Number.isFinite(s.temperature)) settings.temperature = s.temperature;
  if (s.max_tokens === null || Number.isInteger(s.max_tokens)) settings.max_tokens = s.max_tokens;
  if (Array.isArray(s.docs)) {
    settings.docs = [...new Set(s.docs.filter((d) => typeof d === "string" && d))].slice(0, 8);
  }
  return {
    id: c.id,
    title: typeof c.title === "string" && c.title.trim() ? c.title : "New chat",
    created: Number(c.created) || Date.now(),
    updated: Number(c.updated) || Date.now(),
    settings,
    messages: Array.isArray(c.messages) ? c.messages.map(sanitizeMessage).filter(Boolean) : [],
  };
}

/**
 * Load the saved state. Unreadable data is not fatal: it is reported through `problem`
 * and the page starts empty (the broken value is kept under a backup key).
 * @returns {{conversations: object[], activeId: string|null, apiKey: string, problem: string|null}}
 */
export function loadState(storage = localStorage) {
  const empty = { conversations: [], activeId: null, apiKey: "", problem: null };
  let raw;
  try {
    raw = storage.getItem(STORAGE_KEY);
  } catch (err) {
    return { ...empty, problem: `Saved conversations are not available: ${err.message}` };
  }
  if (!raw) return empty;
  try {
    const data = JSON.parse(raw);
    if (!data || !Array.isArray(data.conversations)) throw new Error("no conversation list");
    const conversations = data.conversations.map(sanitizeConversation).filter(Boolean);
    const activeId = conversations.some((c) => c.id === data.activeId) ? data.activeId : null;
    return {
      conversations,
      activeId,
      apiKey: typeof data.apiKey === "string" ? data.apiKey : "",
      problem: null,
    };
  } catch (err) {
    try {
      storage.setItem(`${STORAGE_KEY}.broken`, raw);
    } catch {
      // Best effort only.
    }
    return { ...empty, problem: `Saved conversations could not be read (${err.message}).` };
  }
}

/** Save the state; returns an error message when the browser refuses (quota, privacy mode). */
export function saveState(state, storage = localStorage) {
  const data = {
    version: 1,
    activeId: state.activeId,
    apiKey: state.apiKey || "",
    conversations: state.conversations,
  };
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(data));
    return null;
  } catch (err) {
    return `Conversations could not be saved: ${err.message}`;
  }
}
