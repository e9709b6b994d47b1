// The explorer page: a user's feed, live (read again at most once a second: there is no stream
// to follow yet), with buttons that post real events, trending now, an item's live windows, and
// the status of the versions, the speed layer and drift.
import { api, event, reason } from "./api.js";
import * as render from "./render.js";

const $ = (selector) => document.querySelector(selector);
const state = { config: null, user: null, feed: null, item: null, titles: new Map(), asking: new Set() };
const SLOW_MS = 5000; // trending and status change by the window, not by the event

function notice(text, kind = "info") {
  const node = $("#notice");
  node.textContent = text;
  node.dataset.kind = kind;
}

function titleOf(item) {
  const known = state.titles.get(item);
  if (known !== undefined) return known || item;
  if (!state.asking.has(item)) {
    state.asking.add(item);
    api.item(item).then((r) => {
      state.titles.set(item, r.ok ? r.body.title : null);
      if (state.feed) showFeed(state.feed);
    });
  }
  return item;
}

function showFeed(feed) {
  for (const item of feed.items) state.titles.set(item.item_id, item.title);
  const actions = state.config.events_key ? state.config.actions : [];
  const options = { titleOf, actions, onAction: act, onOpen: openItem };
  $("#feed").replaceChildren(...feed.items.map((item, n) => render.feedItem(item, n + 1, options)));
  const mode = [feed.cold_start ? "cold start" : null, feed.degraded ? "DEGRADED" : null].filter(Boolean);
  $("#feed-meta").textContent =
    `${feed.user_id}: ${feed.items.length} of ${feed.candidates} candidates, view ${feed.view_version || "none"}, ` +
    `model ${feed.model_version || "none"} (${feed.variant})${mode.length ? ", " + mode.join(", ") : ""}; ` +
    `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.feedAt = String(Date.now());
}

function showRecent(profile) {
  const recent = [...profile.recent].reverse().slice(0, 10);
  const rows = recent.map((i) =>
    render.el("li", {}, `${i.type} `, render.el("q", {}, titleOf(i.item_id)), ` ${render.ago(Date.now() - i.event_time_ms)} ago`),
  );
  $("#recent").replaceChildren(...(rows.length ? rows : [render.el("li", { class: "meta" }, "nothing since the batch run")]));
}

async function refreshFeed() {
  if (!state.user) return;
  const user = state.user;
  const [feed, profile] = await Promise.all([api.feed(user, state.config.k), api.profile(user)]);
  if (user !== state.user) return; // another user was picked meanwhile
  if (!feed.ok) {
    notice(`The feed of ${user} could not be read: ${reason(feed)}`, "error");
    return;
  }
  state.feed = feed.body;
  showFeed(feed.body);
  if (profile.ok) showRecent(profile.body);
}

async function refreshSlow() {
  const [trending, status] = await Promise.all([api.trending(10), api.status()]);
  if (trending.ok) {
    const t = trending.body;
    $("#trending-meta").textContent = t.window_end_ms ? `window ending ${new Date(t.window_end_ms).toLocaleTimeString()}` : "no window closed yet";
    $("#trending").replaceChildren(
      ...t.items.map((i) =>
        render.el("li", {}, render.el("button", { type: "button", class: "link", onclick: () => openItem(i.item_id) }, i.title || i.item_id), ` ${i.score.toFixed(1)}`),
      ),
    );
  }
  if (status.ok) {
    $("#status").replaceChildren(...render.status(status.body, state.feed));
    $("#drift tbody").replaceChildren(...render.drift(status.body.drift));
  }
}

async function refreshItem() {
  if (!state.item) return;
  const item = state.item;
  const r = await api.item(item);
  if (item !== state.item) return;
  $("#item-panel").hidden = false;
  $("#item").replaceChildren(...(r.ok ? render.itemPage(r.body) : [render.el("p", {}, reason(r))]));
}

function openItem(item) {
  state.item = item;
  refreshItem();
}

async function act(item, type) {
  const r = await api.post(state.config.events_key, [event(state.user, item.item_id, type)]);
  if (r.ok) notice(`Posted ${type} of ${item.title || item.item_id} for ${state.user}; the feed follows within a second or two.`);
  else notice(`The ${type} was not taken: ${reason(r)}`, "error");
}

function openUser(user) {
  state.user = user;
  state.feed = null;
  $("#user").value = user;
  const url = new URL(window.location.href);
  url.searchParams.set("user", user);
  window.history.replaceState(null, "", url);
  notice("");
  refreshFeed();
}

async function randomUser() {
  const r = await api.sample();
  if (!r.ok || !r.body.users.length) {
    notice(r.ok ? "The served version knows no user yet: type one in." : `No user could be drawn: ${reason(r)}`, "error");
    return;
  }
  openUser(r.body.users[0]);
}

function every(ms, refresh) {
  const tick = async () => {
    const started = Date.now();
    await refresh();
    setTimeout(tick, Math.max(0, ms - (Date.now() - started)));
  };
  tick();
}

async function main() {
  const config = await api.config();
  if (!config.ok) {
    notice(`The explorer's settings could not be read: ${reason(config)}`, "error");
    return;
  }
  state.config = config.body;
  $("#pick").addEventListener("submit", (e) => {
    e.preventDefault();
    openUser($("#user").value.trim());
  });
  $("#random").addEventListener("click", randomUser);
  if (!state.config.events_key) notice("This API gives the page no key (serving.ui_key): it shows feeds but posts no events.");
  every(Math.max(1000, state.config.poll_ms), refreshFeed);
  every(SLOW_MS, refreshSlow);
  every(2000, refreshItem);
  const user = new URL(window.location.href).searchParams.get("user");
  if (user) openUser(user);
}

main();
