// Inline SVG icons, drawn as stroked paths (no icon font, nothing fetched).

const SVG = "http://www.w3.org/2000/svg";

const PATHS = {
  plus: "M12 5v14M5 12h14",
  pencil: "M4 20h4L19 9l-4-4L4 16v4zM13.5 6.5l4 4",
  trash: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
  sliders:
    "M4 6h9M17 6h3M4 12h3M11 12h9M4 18h11M19 18h1" +
    "M13 6a2 2 0 1 0 4 0a2 2 0 1 0-4 0M7 12a2 2 0 1 0 4 0a2 2 0 1 0-4 0" +
    "M15 18a2 2 0 1 0 4 0a2 2 0 1 0-4 0",
  send: "M5 12h14M13 6l6 6-6 6",
  stop: "M7 7h10v10H7z",
  menu: "M4 6h16M4 12h16M4 18h16",
  copy: "M9 9h10v10H9zM5 15V5h10",
  check: "M5 12l5 5 9-10",
  close: "M6 6l12 12M18 6L6 18",
  refresh: "M20 12a8 8 0 1 1-2.3-5.6M20 4v5h-5",
  alert: "M12 4l9 16H3zM12 10v4M12 17v.5",
  chat: "M4 5h16v11H9l-5 4z",
};

/** An <svg> element for the named icon (aria-hidden: buttons carry their own labels). */
export function icon(name, className = "icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PATHS[name] || "");
  svg.append(path);
  return svg;
}

/** Fill every element carrying data-icon="name" with its icon (static markup only). */
export function hydrateIcons(root = document) {
  for (const node of root.querySelectorAll("[data-icon]")) {
    node.prepend(icon(node.dataset.icon));
  }
}
