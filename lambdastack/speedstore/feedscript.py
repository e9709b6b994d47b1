"""The feed's one round trip: a script over the user's hash and seen set, the newest trending
window and the live counts since the as-of, and the plan of which keys and arguments one read
sends it; and the predict route's script (users' recent interactions and the same live counts).

`redis.RedisSpeedStore` and the API's async reader (`serving.speed_view.SpeedView`) send FEED_LUA
to Redis; `memory.MemorySpeedStore` runs its Python twin over the same keys and arguments. All
three decode the reply with `lambdastack.speedview.decode_feed_reply`.

The live counts (LIVE_LUA, shared by both scripts): when the as-of's live total
`{p}:since:{as_of_ms}` exists (the speed layer keeps it: speed.totals), the candidates' counts are
one ZMSCORE of it and the movers its top n, exact however old the as-of; when it does not (the
speed layer has not caught up with a new version yet, or nothing happened since the as-of), the
buckets since the as-of are summed, at most `serving.speed_buckets_max` of the newest. The reply's
`live` says which: "total" or "buckets".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings
from lambdastack.speedview import buckets_since

# live(since, candidates, movers_n, bucket prefix, first bucket, buckets, bucket ms) -> counts
# (aligned with the candidates; false where nothing holds one), movers ({item, total}: the total's
# top n, or each bucket's n most engaged summed in first-seen order, Python picking the top as
# `speedview.merge_bucket_replies` does; none when movers_n is 0) and the source used. Bucket keys
# are built inside the script from the prefix (a single, non-cluster Redis allows it): sending
# 48 key names cost more than the read of the one total. Buckets that do not exist are skipped.
LIVE_LUA = """
local function live(since, cands, movers_n, prefix, first, n_buckets, step)
  local n = #cands
  local counts, movers = {}, {}
  for i = 1, n do counts[i] = false end
  if redis.call('EXISTS', since) == 1 then
    if movers_n > 0 then
      local top = redis.call('ZREVRANGE', since, 0, movers_n - 1, 'WITHSCORES')
      for j = 1, #top, 2 do movers[#movers + 1] = {top[j], tonumber(top[j + 1])} end
    end
    if n > 0 then
      local scores = redis.call('ZMSCORE', since, unpack(cands))
      for i = 1, n do
        if scores[i] then counts[i] = tonumber(scores[i]) end
      end
    end
    return counts, movers, 'total'
  end
  local totals, order = {}, {}
  for b = 0, n_buckets - 1 do
    local key = prefix .. string.format('%d', first + b * step)
    if redis.call('EXISTS', key) == 1 then
      if movers_n > 0 then
        local top = redis.call('ZREVRANGE', key, 0, movers_n - 1, 'WITHSCORES')
        for j = 1, #top, 2 do
          local m = top[j]
          if totals[m] == nil then
            totals[m] = 0
            order[#order + 1] = m
          end
          totals[m] = totals[m] + tonumber(top[j + 1])
        end
      end
      if n > 0 then
        local scores = redis.call('ZMSCORE', key, unpack(cands))
        for i = 1, n do
          if scores[i] then counts[i] = (counts[i] or 0) + tonumber(scores[i]) end
        end
      end
    end
  end
  for j = 1, #order do movers[j] = {order[j], totals[order[j]]} end
  return counts, movers, 'buckets'
end
local function split(joined)
  local out = {}
  for id in string.gmatch(joined, '[^\\n]+') do out[#out + 1] = id end
  return out
end
"""

# One round trip for a feed: the user's hash, the items of the user's seen set (KEYS[3]) with an
# event time at or after the as-of (ARGV[5]; the batch history holds the older ones), the newest
# trending window and the live counts (KEYS[4] the total, ARGV[6..9] the buckets) of the
# candidates (ARGV[4], newline-separated) and the movers (ARGV[3]). One JSON string comes back
# (cheap to parse, unlike hundreds of RESP lines). The trending key is found inside the script
# from `trending:latest`.
FEED_LUA = (
    LIVE_LUA
    + """
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
out.counts, out.movers, out.live = live(
  KEYS[4], split(ARGV[4]), tonumber(ARGV[3]), ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
)
return cjson.encode(out)
"""
)

# The predict route's round trip: the live counts (KEYS[1] the total, ARGV[2..5] the buckets) of
# the items (ARGV[1]) and the `recent` field of each user's hash (KEYS[2..]).
SIGNALS_LUA = (
    LIVE_LUA
    + """
local out = {}
out.counts, out.movers, out.live = live(
  KEYS[1], split(ARGV[1]), 0, ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
)
local recent = {}
for k = 2, #KEYS do recent[k - 1] = redis.call('HGET', KEYS[k], 'recent') or cjson.null end
out.recent = recent
return cjson.encode(out)
"""
)

FEED_SHA = hashlib.sha1(FEED_LUA.encode()).hexdigest()
SIGNALS_SHA = hashlib.sha1(SIGNALS_LUA.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """The settings one feed read needs, and the keys and arguments of FEED_LUA it sends."""

    layout: KeyLayout
    bucket_s: int
    buckets_max: int  # the fallback's bound: buckets summed when the as-of has no live total
    trending_n: int
    movers_n: int
    trending_prefix: str  # + a window end = that window's key
    bucket_prefix: str  # + a bucket start = that bucket's key

    @staticmethod
    def from_settings(settings: Settings) -> FeedPlan:
        layout, s = KeyLayout(settings.redis.key_prefix), settings.serving
        trending, bucket = layout.trending(0).removesuffix("0"), layout.bucket(0).removesuffix("0")
        return FeedPlan(
            layout,
            settings.batch.bucket_s,
            s.speed_buckets_max,
            s.trending_n,
            s.speed_movers_n,
            trending,
            bucket,
        )

    def _live_args(self, as_of_ms: int, now_ms: int) -> tuple[str, int, int, int]:
        """LIVE_LUA's bucket arguments: the prefix, the first bucket, how many, the bucket size."""
        buckets = buckets_since(as_of_ms, now_ms, self.bucket_s, self.buckets_max)
        return self.bucket_prefix, buckets[0], len(buckets), self.bucket_s * 1000

    def request(
        self, user_id: str, as_of_ms: int, now_ms: int, candidates: Sequence[str]
    ) -> tuple[list[str], tuple[Any, ...]]:
        """(KEYS, ARGV) of FEED_LUA: the user, `trending:latest`, the user's seen set, the as-of's
        live total; the trending window, the candidates, the as-of and the buckets."""
        lay = self.layout
        # the candidates travel as one newline-joined argument (ids never hold one: ID_PATTERN):
        # packing 150 arguments cost more than the script itself
        joined = "\n".join(candidates)
        args = (self.trending_prefix, self.trending_n, self.movers_n, joined, as_of_ms)
        keys = [lay.user(user_id), lay.trending_latest(), lay.seen(user_id), lay.since(as_of_ms)]
        return keys, (*args, *self._live_args(as_of_ms, now_ms))

    def signals_request(
        self, users: Sequence[str], items: Sequence[str], as_of_ms: int, now_ms: int
    ) -> tuple[list[str], tuple[Any, ...]]:
        """(KEYS, ARGV) of SIGNALS_LUA: the as-of's live total, then each user's hash."""
        keys = [self.layout.since(as_of_ms), *(self.layout.user(u) for u in users)]
        return keys, ("\n".join(items), *self._live_args(as_of_ms, now_ms))
