"""Where skewless keeps online state in Redis, and the Lua script that changes it atomically.

Every key of one (view, entity) shares the hash tag ``{<view>|<entity>}`` (``<entity>``: the
join-key values, escaped, joined by ``|``), so in Redis Cluster an entity's keys live in one slot
and one script can touch them all (docs/architecture.md, "Executors"):

- ``skl:{v|e}:t:<g>:<tile>``   hash: partial aggregates of the tile starting at ``<tile>`` µs of
  granularity ``<g>`` µs; field ``<agg>.<part>`` (``n`` count, ``s`` sum and ``h`` an integer
  sum's high part, ``m`` min/max, ``o``/``v`` order and value of ``last``); expires when no
  window can read it any more.
- ``skl:{v|e}:d:<agg>:<tile>`` set: the distinct values of one distinct-count tile.
- ``skl:{v|e}:latest``         string: event time (µs) of the entity's latest counted event.
- ``skl:{v|e}:seen``           sorted set: event ids applied, scored by when a copy would be too
  late anyway (µs), and the member ``@hwm`` scored by the high-water mark: an ingest time (µs)
  before which no event still to be delivered arrived, when the entity was last written (the
  oldest entry pending in the consumer group, or the batch's own earliest). An id whose deadline
  is below the mark is treated as seen: any copy yet to come would be too late; ids below it are
  trimmed on every write. (No id member can be ``@hwm``: each ends with ``@`` and its event
  time's digits.)
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = [
    "APPLY_SCRIPT",
    "HWM_MEMBER",
    "LATEST_KEY",
    "SEEN_KEY",
    "STATE_KEY",
    "entity_tag",
    "entity_tag_expr",
    "latest_key",
    "set_key",
    "set_kind",
    "state_key",
    "state_key_expr",
    "tile_key",
    "tile_kind",
]


#: An entity's bookkeeping keys, with ``{}`` for its tag (``str.format``, ``pl.format``).
LATEST_KEY = "skl:{}:latest"
SEEN_KEY = "skl:{}:seen"
#: A tile or set key, with ``{}`` for the tag, the kind (``tile_kind``, ``set_kind``) and the tile start.
STATE_KEY = "skl:{}:{}:{}"
#: The seen set's member that holds the high-water mark as its score.
HWM_MEMBER = "@hwm"


def entity_tag(view: str, entity: Sequence[object]) -> str:
    """The hash tag shared by every key of one entity of one view. Each join-key value is
    escaped (``\\`` → ``\\\\``, ``|`` → ``\\|``): unescaped, the composite keys ``("x|y", "z")``
    and ``("x", "y|z")`` would share one tag, and so one entity's state."""
    escaped = (str(v).replace("\\", "\\\\").replace("|", "\\|") for v in entity)
    return "{" + view + "|" + "|".join(escaped) + "}"


def entity_tag_expr(view: str, join_keys: Sequence[str]) -> pl.Expr:
    """``entity_tag`` as a polars expression over the join-key columns."""
    keys = [
        pl.col(k)
        .cast(pl.String)
        .str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all("|", "\\|", literal=True)
        for k in join_keys
    ]
    return pl.concat_str([pl.lit("{" + view + "|"), pl.concat_str(keys, separator="|"), pl.lit("}")])


def tile_kind(granularity_us: int) -> str:
    """What names the tiles of one granularity among an entity's keys."""
    return f"t:{granularity_us}"


def set_kind(aggregation: str) -> str:
    """What names one distinct-count aggregation's sets among an entity's keys."""
    return f"d:{aggregation}"


def state_key(tag: str, kind: str, tile_us: int) -> str:
    """A tile or set key: ``skl:<tag>:<kind>:<tile start>``."""
    return STATE_KEY.format(tag, kind, tile_us)


def state_key_expr(tag: pl.Expr, kind: pl.Expr, tile_us: pl.Expr) -> pl.Expr:
    """``state_key`` as a polars expression."""
    return pl.format(STATE_KEY, tag, kind, tile_us)


def tile_key(tag: str, granularity_us: int, tile_us: int) -> str:
    return state_key(tag, tile_kind(granularity_us), tile_us)


def set_key(tag: str, aggregation: str, tile_us: int) -> str:
    return state_key(tag, set_kind(aggregation), tile_us)


def latest_key(tag: str) -> str:
    return LATEST_KEY.format(tag)


#: Applies one batch of events of one (view, entity), or nothing.
#: KEYS[1] = seen set, KEYS[2] = latest, KEYS[3..] = tiles and sets.
#: ARGV = now_us, low_us, n_ids, (id, too_late_at_us)*, latest_us, latest_ttl_ms,
#:        n_ops, (key_index, op, field, value)*, n_expiries, (key_index, ttl_ms)*
#: ``low_us``: no event still to be delivered, to this consumer or another, arrived before it; it
#: raises the high-water mark. Returns 0 (and changes nothing) if any id was already applied — or
#: could have been and was forgotten: its deadline is below the high-water mark — else 1.
#:
#: Redis spends about as much on a call from Lua as on the command it runs, so the script makes
#: few: one ZMSCORE reads the high-water mark (the seen set's member ``@hwm``) and every id, one
#: ZADD records them all. A tile or set key's expiry is set when the key is new (``PEXPIRE …
#: NX``): any later call asks for no earlier moment a read still needs it (docs/architecture.md,
#: "Expiry"). Redis 6.2 (the embedded redis-server) lacks NX and GT: there the script compares
#: with ``PTTL`` and keeps the longer expiry, one call more per key.
APPLY_SCRIPT = """
local now = tonumber(ARGV[1])
local redis7 = redis.REDIS_VERSION_NUM ~= nil  -- Lua sees it from 7.0, which brought PEXPIRE's NX and GT
local n_ids = tonumber(ARGV[3])
local members = {'HWM_MEMBER'}
for j = 1, n_ids do members[j + 1] = ARGV[2 + 2 * j] end
local scores = {}
for first = 1, #members, 1000 do
  local part = redis.call('ZMSCORE', KEYS[1], unpack(members, first, math.min(first + 999, #members)))
  for _, score in ipairs(part) do scores[#scores + 1] = score end
end
local known = scores[1] ~= false
local hwm = known and tonumber(scores[1]) or 0
local seen_until = now
for j = 1, n_ids do
  local deadline = tonumber(ARGV[3 + 2 * j])
  if deadline < hwm or scores[j + 1] then return 0 end
  if deadline > seen_until then seen_until = deadline end
end
if tonumber(ARGV[2]) > hwm then hwm = tonumber(ARGV[2]) end  -- low_us
local hwm_text = string.format('%d', hwm)
local pairs_ = {hwm_text, 'HWM_MEMBER'}
for j = 1, n_ids do
  pairs_[#pairs_ + 1] = ARGV[3 + 2 * j]
  pairs_[#pairs_ + 1] = ARGV[2 + 2 * j]
end
for first = 1, #pairs_, 2000 do
  redis.call('ZADD', KEYS[1], unpack(pairs_, first, math.min(first + 1999, #pairs_)))
end
-- Trimmed after the mark is raised, so the mark itself stays: trimmed first, a set whose every
-- member was below the new mark was deleted, came back without an expiry, and GT never gave it one.
if known then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. hwm_text) end
local keep = math.ceil((seen_until - now) / 1000) + 1
if redis7 then
  redis.call('PEXPIRE', KEYS[1], keep, known and 'GT' or 'NX')
elseif redis.call('PTTL', KEYS[1]) < keep then
  redis.call('PEXPIRE', KEYS[1], keep)
end
local i = 4 + 2 * n_ids
local latest = redis.call('GET', KEYS[2])
local latest_ttl = tonumber(ARGV[i + 1])
if not latest or tonumber(ARGV[i]) > tonumber(latest) then
  if latest_ttl > 0 then
    redis.call('SET', KEYS[2], ARGV[i], 'PX', latest_ttl)
  else
    redis.call('SET', KEYS[2], ARGV[i])
  end
elseif latest_ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], latest_ttl)
end
i = i + 2
local n_ops = tonumber(ARGV[i])
i = i + 1
local last_op = i + 4 * n_ops
while i < last_op do
  local index, op, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = KEYS[tonumber(index)]
  i = i + 4
  if op == 'inc' then
    redis.call('HINCRBY', key, field, value)
  elseif op == 'incf' then
    redis.call('HINCRBYFLOAT', key, field, value)
  elseif op == 'sadd' then  -- with the set's next values (ops come sorted by key): one call
    local values = {value}
    while i < last_op and ARGV[i] == index and ARGV[i + 1] == 'sadd' and #values < 1000 do
      values[#values + 1] = ARGV[i + 3]
      i = i + 4
    end
    redis.call('SADD', key, unpack(values))
  elseif op == 'minn' or op == 'maxn' or op == 'mins' or op == 'maxs' then
    local cur = redis.call('HGET', key, field)
    local new_v, cur_v = value, cur
    if cur and (op == 'minn' or op == 'maxn') then new_v, cur_v = tonumber(value), tonumber(cur) end
    if not cur or ((op == 'minn' or op == 'mins') and new_v < cur_v) or ((op == 'maxn' or op == 'maxs') and new_v > cur_v) then
      redis.call('HSET', key, field, value)
    end
  elseif op == 'lastn' or op == 'lasts' then
    local order, v = string.match(value, '^(.-)\\31(.*)$')
    local cur_o = redis.call('HGET', key, field .. '.o')
    local newer = not cur_o or order > cur_o
    if cur_o and order == cur_o then
      local cur_v = redis.call('HGET', key, field .. '.v')
      if op == 'lastn' then newer = tonumber(v) > tonumber(cur_v) else newer = v > cur_v end
    end
    if newer then redis.call('HSET', key, field .. '.o', order, field .. '.v', v) end
  end
end
local n_exp = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_exp do
  local key, ttl = KEYS[tonumber(ARGV[i])], ARGV[i + 1]
  if redis7 then
    redis.call('PEXPIRE', key, ttl, 'NX')
  elseif redis.call('PTTL', key) < tonumber(ttl) then
    redis.call('PEXPIRE', key, ttl)
  end
  i = i + 2
end
return 1
""".replace("HWM_MEMBER", HWM_MEMBER)
