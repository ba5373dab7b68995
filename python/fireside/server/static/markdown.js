// A small, safe Markdown renderer for untrusted model output.
//
// It builds DOM nodes with createElement/createTextNode only: no string of model text ever
// reaches innerHTML, so `<script>` or `<img onerror>` in a reply is shown as text. Links are
// kept only for http(s)/mailto URLs; images are shown as links (never loaded), so a reply
// cannot make the browser fetch anything. Supported: fenced code (an unclosed fence runs to
// the end, which suits streaming), headings, paragraphs with hard line breaks, lists (nested
// by indentation), block quotes, tables, rules, and inline code, bold, italic, strike-through,
// links and bare URLs.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?/;
const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])(?: +|$)(.*)$/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;
const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const MAX_DEPTH = 16; // nesting bound: deeply nested quotes/lists degrade to text

/**
 * Render Markdown source into a DocumentFragment.
 * @param {string} source untrusted text
 * @param {{onCopy?: (text: string, button: HTMLButtonElement) => void}} [options]
 * @returns {DocumentFragment}
 */
export function renderMarkdown(source, options = {}) {
  const fragment = document.createDocumentFragment();
  const lines = String(source).replace(/\r\n?/g, "\n").split("\n");
  renderBlocks(lines, fragment, options, 0);
  return fragment;
}

/** Return a URL string if it is safe to link to, else null. */
export function safeUrl(raw) {
  const text = String(raw).trim();
  if (!text) return null;
  let url;
  try {
    url = new URL(text);
  } catch {
    return null; // relative or malformed: not linked
  }
  return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
}

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

function isBlank(line) {
  return line.trim() === "";
}

function startsBlock(line) {
  return (
    FENCE.test(line) ||
    HEADING.test(line) ||
    RULE.test(line) ||
    QUOTE.test(line) ||
    LIST_ITEM.test(line)
  );
}

function renderBlocks(lines, parent, options, depth) {
  if (depth > MAX_DEPTH) {
    const p = el("p");
    appendInline(p, lines.join("\n"));
    parent.append(p);
    return;
  }
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i += 1;
      continue;
    }
    let match;
    if ((match = FENCE.exec(line))) {
      i = renderFence(lines, i, match, parent, options);
    } else if ((match = HEADING.exec(line))) {
      const h = el(`h${match[1].length}`);
      appendInline(h, match[2] || "");
      parent.append(h);
      i += 1;
    } else if (RULE.test(line)) {
      parent.append(el("hr"));
      i += 1;
    } else if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && !isBlank(lines[i])) {
        inner.push(lines[i].replace(QUOTE, ""));
        i += 1;
      }
      const quote = el("blockquote");
      renderBlocks(inner, quote, options, depth + 1);
      parent.append(quote);
    } else if (LIST_ITEM.test(line)) {
      i = renderList(lines, i, parent, options, depth);
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1])) {
      i = renderTable(lines, i, parent);
    } else {
      const paragraph = [];
      while (i < lines.length && !isBlank(lines[i])) {
        if (paragraph.length && startsBlock(lines[i])) break;
        paragraph.push(lines[i].trim());
        i += 1;
      }
      const p = el("p");
      appendInline(p, paragraph.join("\n"));
      parent.append(p);
    }
  }
}

function renderFence(lines, start, match, parent, options) {
  const marker = match[1];
  const language = match[2];
  const indent = lines[start].length - lines[start].trimStart().length;
  const body = [];
  let i = start + 1;
  let closed = false;
  while (i < lines.length) {
    const trimmed = lines[i].trim();
    if (trimmed.startsWith(marker[0].repeat(marker.length)) && /^(`+|~+)$/.test(trimmed)) {
      closed = true;
      i += 1;
      break;
    }
    // Strip up to the fence's own indentation, as CommonMark does.
    let line = lines[i];
    let strip = 0;
    while (strip < indent && line[strip] === " ") strip += 1;
    body.push(line.slice(strip));
    i += 1;
  }
  parent.append(codeBlock(body.join("\n"), language, closed, options));
  return i;
}

function codeBlock(code, language, closed, options) {
  const block = el("div", "code-block");
  if (!closed) block.classList.add("streaming");
  const head = el("div", "code-head");
  const label = el("span", "code-lang");
  label.textContent = language || "text";
  const copy = el("button", "copy-btn");
  copy.type = "button";
  copy.textContent = "Copy";
  copy.title = "Copy code";
  copy.addEventListener("click", () => {
    if (options.onCopy) options.onCopy(code, copy);
  });
  head.append(label, copy);
  const pre = el("pre");
  const codeEl = el("code");
  if (language) codeEl.dataset.lang = language;
  codeEl.textContent = code;
  pre.append(codeEl);
  block.append(head, pre);
  return block;
}

function renderList(lines, start, parent, options, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const baseIndent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = el(ordered ? "ol" : "ul");
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) list.start = n;
  }
  let i = start;
  let loose = false;
  const items = [];
  while (i < lines.length) {
    const match = LIST_ITEM.exec(lines[i]);
    if (!match || match[1].length !== baseIndent || /\d/.test(match[2]) !== ordered) break;
    const contentIndent = match[1].length + match[2].length + 1;
    const body = [match[3]];
    i += 1;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        // A blank line continues the item only if indented content follows.
        let j = i + 1;
        while (j < lines.length && isBlank(lines[j])) j += 1;
        if (j < lines.length && indentOf(lines[j]) >= contentIndent) {
          for (; i < j; i += 1) body.push("");
          loose = true;
          continue;
        }
        break;
      }
      const indent = indentOf(line);
      if (indent >= contentIndent || (indent > baseIndent && LIST_ITEM.test(line))) {
        body.push(line.slice(Math.min(indent, contentIndent)));
      } else if (!startsBlock(line) && indent > baseIndent - 1 && !LIST_ITEM.test(line)) {
        body.push(line.trim()); // lazy continuation of the item's paragraph
      } else {
        break;
      }
      i += 1;
    }
    items.push(body);
    // Blank lines between items of the same list make it loose.
    let j = i;
    while (j < lines.length && isBlank(lines[j])) j += 1;
    if (j > i && j < lines.length) {
      const next = LIST_ITEM.exec(lines[j]);
      if (next && next[1].length === baseIndent && /\d/.test(next[2]) === ordered) {
        loose = true;
        i = j;
      }
    }
  }
  for (const body of items) {
    const li = el("li");
    renderBlocks(body, li, options, depth + 1);
    // Tight lists show their single paragraph inline.
    if (!loose && li.firstChild && li.firstChild.nodeName === "P") {
      const p = li.firstChild;
      p.replaceWith(...p.childNodes);
    }
    list.append(li);
  }
  parent.append(list);
  return i;
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

function splitRow(line) {
  let text = line.trim();
  if (text.startsWith("|")) text = text.slice(1);
  if (text.endsWith("|") && !text.endsWith("\\|")) text = text.slice(0, -1);
  const cells = [];
  let current = "";
  let inCode = false;
  for (let k = 0; k < text.length; k += 1) {
    const ch = text[k];
    if (ch === "\\" && text[k + 1] === "|") {
      current += "|";
      k += 1;
    } else if (ch === "`") {
      inCode = !inCode;
      current += ch;
    } else if (ch === "|" && !inCode) {
      cells.push(current.trim());
      current = "";
    } else {
      current += ch;
    }
  }
  cells.push(current.trim());
  return cells;
}

function renderTable(lines, start, parent) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((cell) => {
    const left = cell.startsWith(":");
    const right = cell.endsWith(":");
    if (left && right) return "center";
    if (right) return "right";
    return left ? "left" : "";
  });
  const wrap = el("div", "table-wrap");
  const table = el("table");
  const thead = el("thead");
  const headRow = el("tr");
  header.forEach((cell, k) => headRow.append(tableCell("th", cell, aligns[k])));
  thead.append(headRow);
  const tbody = el("tbody");
  let i = start + 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
    const cells = splitRow(lines[i]);
    const row = el("tr");
    for (let k = 0; k < header.length; k += 1) {
      row.append(tableCell("td", cells[k] ?? "", aligns[k]));
    }
    tbody.append(row);
    i += 1;
  }
  table.append(thead, tbody);
  wrap.append(table);
  parent.append(wrap);
  return i;
}

function tableCell(tag, text, align) {
  const cell = el(tag);
  if (align) cell.classList.add(`align-${align}`);
  appendInline(cell, text);
  return cell;
}

// ---- inline ----

const ESCAPABLE = "\\`*_{}[]()#+-.!|~<>\"'";
const URL_START = /https?:\/\/[^\s<>"'`]+/y;

/** Append inline Markdown `text` to `parent` as DOM nodes. */
export function appendInline(parent, text, depth = 0) {
  let buffer = "";
  const flush = () => {
    if (!buffer) return;
    const parts = buffer.split("\n");
    parts.forEach((part, k) => {
      if (k > 0) parent.append(el("br"));
      if (part) parent.append(document.createTextNode(part));
    });
    buffer = "";
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (ch === "`") {
      const run = runLength(text, i, "`");
      const close = findRun(text, i + run, "`", run);
      if (close >= 0) {
        flush();
        let inner = text.slice(i + run, close).replace(/\n/g, " ");
        if (inner.length > 2 && inner.startsWith(" ") && inner.endsWith(" ")) {
          inner = inner.slice(1, -1);
        }
        const code = el("code");
        code.textContent = inner;
        parent.append(code);
        i = close + run;
        continue;
      }
      buffer += text.slice(i, i + run);
      i += run;
      continue;
    }
    if (depth < MAX_DEPTH && (ch === "*" || ch === "_" || ch === "~")) {
      const consumed = tryEmphasis(parent, text, i, flush, depth);
      if (consumed > 0) {
        i += consumed;
        continue;
      }
    }
    if (ch === "[" || (ch === "!" && text[i + 1] === "[")) {
      const consumed = tryLink(parent, text, i, flush, depth);
      if (consumed > 0) {
        i += consumed;
        continue;
      }
    }
    if (ch === "h" && (i === 0 || /[\s(]/.test(text[i - 1]))) {
      URL_START.lastIndex = i;
      const match = URL_START.exec(text);
      if (match) {
        const raw = match[0].replace(/[.,;:!?)\]]+$/, "");
        const href = safeUrl(raw);
        if (href) {
          flush();
          parent.append(link(href, raw));
          i += raw.length;
          continue;
        }
      }
    }
    buffer += ch;
    i += 1;
  }
  flush();
}

function runLength(text, i, ch) {
  let n = 0;
  while (text[i + n] === ch) n += 1;
  return n;
}

function findRun(text, from, ch, length) {
  let i = text.indexOf(ch.repeat(length), from);
  while (i >= 0) {
    const run = runLength(text, i, ch);
    if (run === length) return i;
    i = text.indexOf(ch.repeat(length), i + run);
  }
  return -1;
}

function tryEmphasis(parent, text, i, flush, depth) {
  const ch = text[i];
  const run = runLength(text, i, ch);
  let size;
  let tag;
  if (ch === "~") {
    if (run !== 2) return 0;
    size = 2;
    tag = "del";
  } else {
    size = run >= 2 ? 2 : 1;
    tag = size === 2 ? "strong" : "em";
  }
  const delim = ch.repeat(size);
  const after = text[i + size];
  if (after === undefined || /\s/.test(after)) return 0; // not left-flanking
  // Underscores inside words (snake_case) are not emphasis.
  if (ch === "_" && i > 0 && /[\p{L}\p{N}]/u.test(text[i - 1])) return 0;
  let j = text.indexOf(delim, i + size);
  while (j >= 0) {
    const before = text[j - 1];
    const next = text[j + size];
    const rightFlanking = before !== undefined && !/\s/.test(before);
    const wordAfter = ch === "_" && next !== undefined && /[\p{L}\p{N}]/u.test(next);
    // For single delimiters, skip over a double one (it belongs to a nested strong).
    const doubled = size === 1 && next === ch;
    if (rightFlanking && !wordAfter && !doubled && j > i + size) break;
    j = text.indexOf(delim, j + (doubled ? 2 : 1));
  }
  if (j < 0) return 0;
  flush();
  const node = el(tag);
  appendInline(node, text.slice(i + size, j), depth + 1);
  parent.append(node);
  return j + size - i;
}

function tryLink(parent, text, i, flush, depth) {
  const image = text[i] === "!";
  const open = image ? i + 1 : i;
  const closeLabel = matchBracket(text, open, "[", "]");
  if (closeLabel < 0 || text[closeLabel + 1] !== "(") return 0;
  const closeDest = matchBracket(text, closeLabel + 1, "(", ")");
  if (closeDest < 0) return 0;
  const label = text.slice(open + 1, closeLabel);
  let destination = text.slice(closeLabel + 2, closeDest).trim();
  const titled = /^(\S+)\s+["'(].*["')]$/.exec(destination);
  if (titled) destination = titled[1];
  if (destination.startsWith("<") && destination.endsWith(">")) {
    destination = destination.slice(1, -1);
  }
  const href = safeUrl(destination);
  flush();
  if (image) {
    // Never load images from model output: show the alt text as a link instead.
    const text = `[image: ${label || destination}]`;
    parent.append(href ? link(href, text) : document.createTextNode(text));
  } else if (href) {
    const a = link(href, "");
    appendInline(a, label, depth + 1);
    parent.append(a);
  } else {
    // An unsafe or relative destination keeps its label as plain text.
    appendInline(parent, label, depth + 1);
  }
  return closeDest + 1 - i;
}

function matchBracket(text, i, openCh, closeCh) {
  let level = 0;
  for (let k = i; k < text.length; k += 1) {
    const ch = text[k];
    if (ch === "\\") {
      k += 1;
    } else if (ch === openCh) {
      level += 1;
    } else if (ch === closeCh) {
      level -= 1;
      if (level === 0) return k;
    } else if (ch === "\n" && openCh === "(") {
      return -1;
    }
  }
  return -1;
}

function link(href, text) {
  const a = el("a");
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  if (text) a.textContent = text;
  return a;
}
