// The API as the explorer reads it: the same endpoints any client uses, nothing of the page's own
// but /ui/config.json. Every call resolves to {ok, status, body} (never throws on an HTTP error),
// so one failed read shows as a notice instead of stopping the page.

async function call(path, options = {}) {
  try {
    const response = await fetch(path, { headers: { Accept: "application/json" }, ...options });
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = { detail: text };
    }
    return { ok: response.ok, status: response.status, body };
  } catch (error) {
    return { ok: false, status: 0, body: { detail: `the API does not answer (${error.message})` } };
  }
}

const id = (value) => encodeURIComponent(value);

export const api = {
  config: () => call("/ui/config.json"),
  feed: (user, k) => call(`/v1/users/${id(user)}/feed?k=${k}`),
  profile: (user) => call(`/v1/users/${id(user)}/profile`),
  sample: () => call("/v1/users/sample?n=1"),
  item: (item) => call(`/v1/items/${id(item)}`),
  trending: (k) => call(`/v1/trending?k=${k}`),
  status: () => call("/v1/status"),
  post(key, events) {
    return call("/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-API-Key": key },
      body: JSON.stringify({ events }),
    });
  },
};

// A random event id (crypto.randomUUID exists only in secure contexts; this works on plain http).
function eventId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "ui-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// One event as the contract (lambdastack.events) wants it: a fresh id, the time now.
export function event(user, item, type) {
  return {
    event_id: eventId(),
    user_id: user,
    item_id: item,
    type,
    event_time: new Date().toISOString(),
  };
}

// The reason a failed call gives, as a sentence.
export function reason(result) {
  const detail = result.body && result.body.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${d.loc}: ${d.msg}`).join("; ");
  return detail ? String(detail) : `HTTP ${result.status}`;
}
