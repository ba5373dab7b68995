// Talking to the fireside server: the model list, streamed chat completions parsed from
// Server-Sent Events, and errors turned into sentences a person can act on.

/** An error answer from the server ({"error": {message, type, param, code}}). */
export class ApiError extends Error {
  constructor(status, body) {
    // OpenAI's shape {"error": {message, ...}}, or Ollama's {"error": "..."} (/api/*)
    const raw = body && body.error;
    const detail = typeof raw === "string" ? { message: raw } : raw || {};
    super(detail.message || `The server answered HTTP ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.type = detail.type || null;
    this.code = detail.code || null;
    this.param = detail.param || null;
  }
}

/** The server could not be reached at all (stopped, crashed, network gone). */
export class ConnectionError extends Error {
  constructor(cause) {
    super("Could not reach the fireside server.");
    this.name = "ConnectionError";
    this.cause = cause;
  }
}

function headers(apiKey, json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (apiKey) h.Authorization = `Bearer ${apiKey}`;
  return h;
}

async function request(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ConnectionError(err);
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      // Not JSON (a proxy page, an empty body): the status alone must do.
    }
    throw new ApiError(response.status, body);
  }
  return response;
}

/** Fetch the ids of the models the server offers. */
export async function listModels({ apiKey, signal } = {}) {
  const response = await request("v1/models", { headers: headers(apiKey, false), signal });
  const body = await response.json();
  return (body.data || []).map((m) => m.id).filter((id) => typeof id === "string");
}

/** Fetch [{id, loaded}] of every model the server can serve (loaded: in memory now). */
export async function listModelCards({ apiKey, signal } = {}) {
  const response = await request("v1/models", { headers: headers(apiKey, false), signal });
  const body = await response.json();
  return (body.data || [])
    .filter((m) => m && typeof m.id === "string")
    .map((m) => ({ id: m.id, loaded: m.loaded === true }));
}

/** The models view's data: {models: [...], catalog: [...], manage_models} (fireside only). */
export async function modelsOverview({ apiKey, signal } = {}) {
  const response = await request("fireside/models", { headers: headers(apiKey, false), signal });
  return response.json();
}

/**
 * Download a model with Ollama's /api/pull, calling onProgress(completed, total) as bytes
 * arrive. Aborting `signal` stops following it, and the server cancels the download
 * (its last client left). Resolves when the server says "success".
 */
export async function pullModel(name, { apiKey, signal, onProgress } = {}) {
  const response = await request("api/pull", {
    method: "POST",
    headers: headers(apiKey, true),
    body: JSON.stringify({ model: name, stream: true }),
    signal,
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line) continue;
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        throw new ApiError(502, { error: `The server sent an unreadable line: ${line.slice(0, 80)}` });
      }
      if (event.error) throw new ApiError(500, { error: event.error });
      if (Number.isFinite(event.total) && event.total > 0 && onProgress) {
        onProgress(event.completed || 0, event.total);
      }
      if (event.status === "success") return;
    }
    if (done) break;
  }
  throw new ConnectionError(new Error("the download stream ended before success"));
}

/** Load a model into memory now (Ollama's /api/generate without a prompt). */
export async function loadModel(name, { apiKey, signal } = {}) {
  await request("api/generate", {
    method: "POST",
    headers: headers(apiKey, true),
    body: JSON.stringify({ model: name, stream: false }),
    signal,
  });
}

/** Delete a downloaded model (Ollama's DELETE /api/delete). */
export async function deleteModel(name, { apiKey } = {}) {
  await request("api/delete", {
    method: "DELETE",
    headers: headers(apiKey, true),
    body: JSON.stringify({ model: name }),
  });
}

/** Unload a model from memory now (it loads again on its next request). */
export async function unloadModel(name, { apiKey } = {}) {
  const response = await request("fireside/models/unload", {
    method: "POST",
    headers: headers(apiKey, true),
    body: JSON.stringify({ model: name }),
  });
  return response.json();
}

/**
 * Fetch the document collections the server exposes (`fireside serve --docs`):
 * [{id, documents, chunks}].
 */
export async function listDocs({ apiKey, signal } = {}) {
  const response = await request("v1/docs", { headers: headers(apiKey, false), signal });
  const body = await response.json();
  return (body.data || [])
    .filter((c) => c && typeof c.id === "string")
    .map((c) => ({
      id: c.id,
      documents: Number.isInteger(c.documents) ? c.documents : null,
      chunks: Number.isInteger(c.chunks) ? c.chunks : null,
    }));
}

/**
 * Yield the `data:` payloads of a Server-Sent Events byte stream, one string per event.
 * Handles events split across reads, CRLF line ends, comments and multi-line data.
 */
export async function* sseData(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        const width = buffer.startsWith("\r\n", newline) ? 2 : 1;
        // A lone "\r" at the end may be the first half of "\r\n": wait for more bytes.
        if (!done && width === 1 && buffer[newline] === "\r" && newline === buffer.length - 1) {
          break;
        }
        buffer = buffer.slice(newline + width);
        if (line === "") {
          if (data.length) yield data.join("\n");
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(line[5] === " " ? 6 : 5));
        }
        // Other fields (event:, id:, retry:) and ":" comments are not used by the API.
      }
      if (done) break;
    }
    if (buffer.startsWith("data:")) data.push(buffer.slice(buffer[5] === " " ? 6 : 5));
    if (data.length) yield data.join("\n");
  } finally {
    reader.releaseLock();
  }
}

/**
 * Stream a chat completion: yields chat.completion.chunk objects until `[DONE]`.
 * Throws ApiError (HTTP or in-stream error), ConnectionError, or AbortError when stopped.
 */
export async function* streamChat(body, { apiKey, signal } = {}) {
  const response = await request("v1/chat/completions", {
    method: "POST",
    headers: headers(apiKey, true),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  let sawDone = false;
  try {
    for await (const payload of sseData(response.body)) {
      if (payload.trim() === "[DONE]") {
        sawDone = true;
        break;
      }
      let chunk;
      try {
        chunk = JSON.parse(payload);
      } catch {
        throw new ApiError(502, {
          error: { message: `The server sent an unreadable event: ${payload.slice(0, 80)}` },
        });
      }
      if (chunk && chunk.error) throw new ApiError(chunk.error.status || 500, chunk);
      yield chunk;
    }
  } catch (err) {
    if (err instanceof TypeError && !(signal && signal.aborted)) {
      throw new ConnectionError(err); // the connection dropped mid-stream
    }
    throw err;
  }
  if (!sawDone && !(signal && signal.aborted)) {
    throw new ConnectionError(new Error("the stream ended before [DONE]"));
  }
}

/**
 * Turn any error from this module into {title, detail} for the thread.
 * @returns {{title: string, detail: string}}
 */
export function describeError(err) {
  if (err instanceof ConnectionError) {
    return {
      title: "The server is not reachable",
      detail:
        `Nothing answered at ${location.origin}. Is \`fireside serve\` still running? ` +
        "Start it again, then retry.",
    };
  }
  if (err instanceof ApiError) {
    const message = err.message;
    if (err.code === "collection_not_found") {
      return {
        title: "A document collection is not available",
        detail: `${message} Pick other collections in Settings.`,
      };
    }
    if (err.code === "context_length_exceeded") {
      return {
        title: "This conversation is too long for the model",
        detail: `${message} Start a new conversation, shorten your message, or lower max tokens.`,
      };
    }
    switch (err.status) {
      case 400:
        return { title: "The server rejected the request", detail: message };
      case 401:
        return {
          title: "The server needs an API key",
          detail: `${message} Enter the key in Settings (the server was started with one).`,
        };
      case 404:
        return { title: "Not found", detail: `${message} Pick another model in Settings.` };
      case 503:
        return {
          title: "The server is busy or not ready",
          detail: `${message} Wait a moment and retry.`,
        };
      default:
        return { title: `The server answered with an error (HTTP ${err.status})`, detail: message };
    }
  }
  return { title: "Something went wrong", detail: String((err && err.message) || err) };
}
