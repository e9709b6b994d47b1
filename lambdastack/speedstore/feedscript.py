"""The feed's one round trip: a script over the user's hash and seen set, the newest trending
window and the buckets since the as-of, and the plan of which keys and arguments one read sends it.

`redis.RedisSpeedStore` and the API's async reader (`serving.speed_view.SpeedView`) send FEED_LUA
to Redis; `memory.MemorySpeedStore` runs its Python twin over the same keys and arguments. All
three decode the reply with `lambdastack.speedview.decode_feed_reply`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings
from lambdastack.speedview import buckets_since

# One round trip for a feed: the user's hash, the items of the user's seen set (KEYS[3]) with an
# event time at or after the as-of (ARGV[5]; the batch history holds the older ones), the newest
# trending window and the speed counts summed over the buckets since the as-of, inside Redis: per
# candidate (ARGV[4], newline-separated, aligned; false where no bucket holds it) and per mover
# (each bucket's ARGV[3] most engaged, totals in first-seen order; Python picks the top, as
# `speedview.merge_bucket_replies` does). Buckets that do not exist are skipped. One JSON string
# comes back (cheap to parse, unlike hundreds of RESP lines). The trending key is found inside the
# script from `trending:latest`, which a single (non-cluster) Redis allows.
FEED_LUA = """
local out = {}
local u = redis.call('HMGET', KEYS[1], 'recent', 'fresh')
out.recent = u[1] or cjson.null
out.fresh = u[2] or cjson.null
out.seen = redis.call('ZRANGE', KEYS[3], ARGV[5], '+inf', 'BYSCORE')
local latest = redis.call('GET', KEYS[2])
out.trending_end = latest and tonumber(latest) or cjson.null
local trending = {}
if latest then
  local t = redis.call('ZREVRANGE', ARGV[1] .. latest, 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
  for j = 1, #t, 2 do trending[#trending + 1] = {t[j], tonumber(t[j + 1])} end
end
out.trending = trending
local cands = {}
for id in string.gmatch(ARGV[4], '[^\\n]+') do cands[#cands + 1] = id end
local n = #cands
local counts = {}
for i = 1, n do counts[i] = false end
local totals, order = {}, {}
for b = 4, #KEYS do
  if redis.call('EXISTS', KEYS[b]) == 1 then
    local top = redis.call('ZREVRANGE', KEYS[b], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
    for j = 1, #top, 2 do
      local m = top[j]
      if totals[m] == nil then
        totals[m] = 0
        order[#order + 1] = m
      end
      totals[m] = totals[m] + tonumber(top[j + 1])
    end
    if n > 0 then
      local scores = redis.call('ZMSCORE', KEYS[b], unpack(cands))
      for i = 1, n do
        if scores[i] then counts[i] = (counts[i] or 0) + tonumber(scores[i]) end
      end
    end
  end
end
out.counts = counts
local movers = {}
for j = 1, #order do movers[j] = {order[j], totals[order[j]]} end
out.movers = movers
return cjson.encode(out)
"""


FEED_SHA = hashlib.sha1(FEED_LUA.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """The settings one feed read needs, and the keys and arguments of FEED_LUA it sends."""

    layout: KeyLayout
    bucket_s: int
    buckets_max: int
    trending_n: int
    movers_n: int
    trending_prefix: str  # + a window end = that window's key

    @staticmethod
    def from_settings(settings: Settings) -> FeedPlan:
        layout, s = KeyLayout(settings.redis.key_prefix), settings.serving
        prefix = layout.trending(0).removesuffix("0")
        return FeedPlan(
            layout, settings.batch.bucket_s, s.speed_buckets_max, s.trending_n, s.speed_movers_n, prefix
        )

    def request(
        self, user_id: str, as_of_ms: int, now_ms: int, candidates: Sequence[str]
    ) -> tuple[list[str], tuple[Any, ...]]:
        """(KEYS, ARGV) of FEED_LUA: the user, `trending:latest`, the user's seen set, then the
        buckets since the as-of."""
        lay = self.layout
        buckets = buckets_since(as_of_ms, now_ms, self.bucket_s, self.buckets_max)
        # the candidates travel as one newline-joined argument (ids never hold one: ID_PATTERN):
        # packing 150 arguments cost more than the script itself
        args = (self.trending_prefix, self.trending_n, self.movers_n, "\n".join(candidates), as_of_ms)
        keys = [lay.user(user_id), lay.trending_latest(), lay.seen(user_id)]
        return [*keys, *(lay.bucket(b) for b in buckets)], args
