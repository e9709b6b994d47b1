// DOM building for the explorer: plain elements with textContent (nothing the API returns is ever
// parsed as HTML).

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Why a source proposed an item, as a reader would say it (serving/feed.py SOURCES).
const WHY = {
  speed_fresh: "scored by the speed layer just after the user's newest events",
  batch_als: "fits the user's long-term taste (the nightly ALS factors)",
  recent_neighbours: "similar to what the user did recently",
  batch_candidates: "among the nightly job's candidates for this user",
  trending: "trending in the last window",
  speed_popular: "much engaged with since the last batch run",
  cluster_popular: "popular with users of similar taste",
  batch_popular: "popular overall",
};

export function ago(ms) {
  if (ms === null || ms === undefined) return "none";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

function reasons(item, titleOf) {
  return item.sources.map((source) => {
    if (source === "recent_neighbours" && item.because) {
      return el("li", { dataset: { source } }, "similar to ", el("q", { class: "because" }, titleOf(item.because)),
        ", which the user engaged with recently");
    }
    return el("li", { dataset: { source } }, WHY[source] || source);
  });
}

// One feed item: title, score, counts, the sources that proposed it and why, and the actions.
export function feedItem(item, rank, { titleOf, actions, onAction, onOpen }) {
  const buttons = actions.map((type) =>
    el("button", { type: "button", class: `act ${type}`, dataset: { type }, onclick: () => onAction(item, type) }, type),
  );
  return el(
    "li",
    { class: "item", dataset: { item: item.item_id } },
    el("div", { class: "rank" }, rank),
    el(
      "div",
      { class: "body" },
      el("button", { type: "button", class: "title link", onclick: () => onOpen(item.item_id) }, item.title || item.item_id),
      el("div", { class: "meta" },
        `${item.item_id} · ${item.genre || "no genre"} · score ${item.score.toFixed(4)} · `,
        el("span", { class: "counts" }, `${item.count} events: ${item.batch_count} batch + ${item.speed_count} speed`)),
      el("div", { class: "sources" }, item.sources.map((s) => el("span", { class: `chip ${s}` }, s))),
      el("ul", { class: "why" }, reasons(item, titleOf)),
    ),
    el("div", { class: "actions" }, buttons),
  );
}

// An item's page: batch attributes, counts since the as-of by type, the 1, 10 and 60 minute windows.
export function itemPage(item) {
  const types = new Set();
  for (const counts of Object.values(item.windows)) Object.keys(counts).forEach((t) => types.add(t));
  const order = [...types].sort((a, b) => (a === "*" ? -1 : b === "*" ? 1 : a.localeCompare(b)));
  const windows = Object.keys(item.windows);
  const head = el("tr", {}, el("th", {}, "type"), windows.map((w) => el("th", {}, w)));
  const rows = order.map((t) =>
    el("tr", {}, el("td", {}, t === "*" ? "all" : t), windows.map((w) => el("td", { class: "num" }, item.windows[w][t] || 0))),
  );
  const byType = Object.entries(item.speed_by_type).map(([t, n]) => `${t} ${n}`).join(", ") || "none";
  return [
    el("p", { class: "title" }, item.title || item.item_id),
    el("p", { class: "meta" }, `${item.item_id} · ${item.genres.join(", ") || "no genre"}`),
    el("p", {}, `${item.count} events: ${item.batch_count} before the as-of + ${item.speed_count} since (${byType})`),
    el("table", { class: "windows" }, el("thead", {}, head), el("tbody", {}, rows)),
  ];
}

export function status(s, feed) {
  const rows = [
    ["view version", s.view_version || "none loaded"],
    ["model version", s.model_version || "none (ranked by popularity)"],
    ["A/B split", s.ab.enabled ? `challenger ${s.ab.challenger_version} for ${(100 * s.ab.challenger_share).toFixed(0)}% of users` : "off"],
    ["this user's variant", feed ? feed.variant : "-"],
    ["newest signal", feed ? `${ago(feed.signal_age_ms)} old` : "-"],
    ["speed layer", s.speed.ok ? `healthy, lag ${s.speed.lag_records ?? "?"} records` : s.speed.problem],
    ["degraded", s.degraded || (feed && feed.degraded) ? "yes" : "no"],
  ];
  return rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { key: k } }, v)]);
}

export function drift(d) {
  if (d === null) return [el("tr", {}, el("td", { colspan: 2 }, "not known (Redis does not answer)"))];
  const features = Object.entries(d.psi).sort((a, b) => b[1] - a[1]);
  if (!features.length) return [el("tr", {}, el("td", { colspan: 2 }, "no drift window closed yet"))];
  const rows = features.map(([f, psi]) => el("tr", {}, el("td", {}, f), el("td", { class: "num" }, psi.toFixed(3))));
  const flag = d.alert ? "ALERT: retrain with `lambdastack batch run`" : "no alert";
  rows.push(el("tr", { class: d.alert ? "alert" : "" }, el("td", {}, `${d.events} events`), el("td", {}, flag)));
  return rows;
}
