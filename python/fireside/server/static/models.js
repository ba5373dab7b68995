// The models view: the models this server can serve (use in this chat, unload, delete
// after confirmation) and the catalog (download with a live progress bar and a cancel
// button). With no model downloaded yet the page opens here: choosing a model is the
// first step, as in GPT4All's first launch. Catalog text reaches the DOM through
// textContent only.

import { deleteModel, describeError, modelsOverview, pullModel, unloadModel } from "./api.js";

const GB = 1e9;
const MB = 1e6;

function size(bytes) {
  if (!Number.isFinite(bytes) || bytes <= 0) return "";
  return bytes >= GB ? `${(bytes / GB).toFixed(1)} GB` : `${Math.round(bytes / MB)} MB`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child != null) node.append(child);
  }
  return node;
}

/**
 * Set up the view in `root`.
 * @param {object} options
 * @param {() => string} options.apiKey the key the page uses
 * @param {() => string|null} options.currentModel the active conversation's model
 * @param {(id: string) => void} options.onUse choose a model for the active conversation
 * @param {() => void} options.onChange the set of downloaded or loaded models changed
 * @param {(open: boolean) => void} options.onToggle the view was opened or closed
 */
export function initModels({ root, apiKey, currentModel, onUse, onChange, onToggle }) {
  const downloads = new Map(); // catalog name -> {controller, completed, total, error}
  let data = null; // the last /fireside/models answer
  let problem = null; // describeError() of the last failure

  function isOpen() {
    return !root.hidden;
  }

  function open() {
    root.hidden = false;
    onToggle(true);
    return refresh();
  }

  function close() {
    root.hidden = true;
    onToggle(false);
  }

  async function refresh() {
    try {
      data = await modelsOverview({ apiKey: apiKey() });
      problem = null;
    } catch (err) {
      problem = describeError(err);
    }
    render();
    return data;
  }

  function fail(err) {
    problem = describeError(err);
    render();
  }

  async function download(name) {
    const controller = new AbortController();
    const entry = { controller, completed: 0, total: 0, error: null };
    downloads.set(name, entry);
    render();
    try {
      await pullModel(name, {
        apiKey: apiKey(),
        signal: controller.signal,
        onProgress(completed, total) {
          entry.completed = completed;
          entry.total = total;
          renderProgress(name);
        },
      });
      entry.completed = entry.total || 1;
      entry.total = entry.total || 1;
      renderProgress(name);
      downloads.delete(name);
      await refresh();
      onChange();
    } catch (err) {
      downloads.delete(name);
      if (err && err.name === "AbortError") {
        render(); // cancelled: the server stops the download once nobody follows it
        return;
      }
      fail(err);
    }
  }

  async function remove(id) {
    if (!window.confirm(`Delete ${id} from this computer? You can download it again later.`)) {
      return;
    }
    try {
      await deleteModel(id, { apiKey: apiKey() });
      await refresh();
      onChange();
    } catch (err) {
      fail(err);
    }
  }

  async function unload(id) {
    try {
      await unloadModel(id, { apiKey: apiKey() });
      await refresh();
      onChange();
    } catch (err) {
      fail(err);
    }
  }

  function renderProgress(name) {
    const entry = downloads.get(name);
    const row = root.querySelector(`[data-catalog="${CSS.escape(name)}"]`);
    if (!entry || !row) return;
    const percent = entry.total ? Math.floor((100 * entry.completed) / entry.total) : 0;
    const bar = row.querySelector("progress");
    const label = row.querySelector(".download-percent");
    if (bar) bar.value = percent;
    if (label) {
      label.textContent = entry.total
        ? `${percent} % · ${size(entry.completed) || "0 MB"} of ${size(entry.total)}`
        : "Starting…";
    }
  }

  function servedRow(model) {
    const state = model.loaded
      ? `loaded · ${size(model.memory)} in memory${model.in_flight ? ` · ${model.in_flight} busy` : ""}`
      : "not loaded";
    const use = el("button", { type: "button", className: "btn", textContent: "Use in this chat" });
    use.addEventListener("click", () => {
      onUse(model.id);
      close();
    });
    const actions = el("div", { className: "model-actions" }, use);
    if (model.id === currentModel()) use.disabled = true;
    if (model.loaded) {
      const button = el("button", { type: "button", className: "btn", textContent: "Unload" });
      button.dataset.action = "unload";
      button.addEventListener("click", () => unload(model.id));
      actions.append(button);
    }
    if (data.manage_models) {
      const button = el("button", { type: "button", className: "btn danger", textContent: "Delete" });
      button.dataset.action = "delete";
      button.addEventListener("click", () => remove(model.id));
      actions.append(button);
    }
    return el(
      "li",
      { className: "model-row", dataset: { model: model.id, loaded: String(model.loaded) } },
      el(
        "div",
        { className: "model-info" },
        el("span", { className: "model-name", textContent: model.id }),
        el("span", { className: "model-facts", textContent: `${size(model.size)} on disk · ${state}` }),
      ),
      actions,
    );
  }

  function catalogRow(entry) {
    const facts = [
      `${size(entry.size)} download`,
      `needs about ${entry.ram_gb} GB of memory`,
      entry.license,
    ].filter(Boolean);
    const info = el(
      "div",
      { className: "model-info" },
      el("span", { className: "model-name", textContent: entry.name }),
      el("span", { className: "model-facts", textContent: facts.join(" · ") }),
      el("span", { className: "model-description", textContent: entry.description }),
    );
    const row = el("li", { className: "model-row", dataset: { catalog: entry.name } }, info);
    const running = downloads.get(entry.name);
    if (running) {
      const cancel = el("button", { type: "button", className: "btn", textContent: "Cancel" });
      cancel.dataset.action = "cancel";
      cancel.addEventListener("click", () => running.controller.abort());
      row.append(
        el(
          "div",
          { className: "model-actions download" },
          el("progress", { max: 100, value: 0, "aria-label": `Downloading ${entry.name}` }),
          el("span", { className: "download-percent", textContent: "Starting…" }),
          cancel,
        ),
      );
    } else if (entry.downloaded) {
      row.append(el("div", { className: "model-actions" }, el("span", { className: "hint", textContent: "Downloaded" })));
    } else if (data.manage_models) {
      const button = el("button", { type: "button", className: "btn primary", textContent: "Download" });
      button.dataset.action = "download";
      button.disabled = entry.downloading;
      button.addEventListener("click", () => download(entry.name));
      row.append(el("div", { className: "model-actions" }, button));
    }
    return row;
  }

  function render() {
    const closeButton = el("button", { type: "button", className: "btn", textContent: "Back to the chat" });
    closeButton.id = "models-close";
    closeButton.addEventListener("click", close);
    const parts = [el("div", { className: "models-head" }, el("h2", { textContent: "Models" }), closeButton)];
    if (problem) {
      parts.push(el("p", { className: "models-error", role: "alert", textContent: `${problem.title}. ${problem.detail}` }));
    }
    if (data) {
      const served = data.models || [];
      if (!served.length) {
        parts.push(
          el("p", {
            className: "models-first-run",
            textContent:
              "No model is downloaded yet. Choose one to download; it runs on this computer, " +
              "and nothing you type leaves it.",
          }),
        );
      } else {
        parts.push(el("h3", { textContent: "On this computer" }));
        parts.push(el("ul", { className: "model-list", id: "served-models" }, ...served.map(servedRow)));
      }
      if (!data.manage_models) {
        parts.push(
          el("p", {
            className: "hint",
            textContent: "This server does not allow downloading or deleting models (it listens beyond this computer without an API key).",
          }),
        );
      }
      const chat = (data.catalog || []).filter((e) => e.kind === "chat");
      parts.push(el("h3", { textContent: "Download a model" }));
      parts.push(el("ul", { className: "model-list", id: "catalog-models" }, ...chat.map(catalogRow)));
    } else if (!problem) {
      parts.push(el("p", { className: "loading", textContent: "Loading…" }));
    }
    root.replaceChildren(...parts);
    for (const name of downloads.keys()) renderProgress(name);
  }

  return { open, close, refresh, isOpen };
}
