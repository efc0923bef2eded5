"""The Redis scripts: each admission, settlement or renewal is one ``EVALSHA`` round trip.

Layout per window: a sorted set ``<key>:z`` (member: the bucket index, score: the bucket's last
millisecond) and a hash ``<key>:h`` (bucket index -> units, plus the running total in field
``sum``). Per pool: a sorted set ``<key>:c`` (member: the lease, score: its expiry in ms). Time
is the Redis server's (``TIME``), so every gateway process agrees on it; a test may pass ``now``.
All keys share one hash tag (``{key_prefix}``), so a Redis Cluster keeps them in one slot.
"""

from __future__ import annotations

__all__ = ["ADMIT", "RENEW", "SETTLE"]

_COMMON = """
local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- drop the buckets whose last millisecond is at or before cutoff; the units still counted
local function purge(z, h, cutoff)
  local total = tonumber(redis.call('HGET', h, 'sum') or '0')
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, 500)
    if #old == 0 then break end
    local units = redis.call('HMGET', h, unpack(old))
    for i = 1, #old do total = total - (tonumber(units[i]) or 0) end
    redis.call('HDEL', h, unpack(old))
    redis.call('ZREM', z, unpack(old))
    if redis.call('EXISTS', z) == 0 then
      redis.call('DEL', h)
      return 0
    end
    if total < 0 then total = 0 end
    redis.call('HSET', h, 'sum', total)
  end
  return total
end

local function add(z, h, now, quantum, window, units)
  local bucket = math.floor(now / quantum)
  local member = string.format('%d', bucket)
  redis.call('HINCRBY', h, member, units)
  redis.call('HINCRBY', h, 'sum', units)
  redis.call('ZADD', z, bucket * quantum + quantum - 1, member)
  redis.call('PEXPIRE', z, window + quantum)
  redis.call('PEXPIRE', h, window + quantum)
end
"""

# KEYS: per window <z>, <h>; then per pool <c>.
# ARGV: now ('' = server time), peek (0|1), lease, lease_ms, windows, pools,
#       then per window: limit, window_ms, quantum_ms, cost; then per pool: limit.
# Returns one string of integers separated by spaces (one bulk reply, quick to read): admitted
# (0|1), now, then per window: used, reset_ms, retry_ms; per pool: used, retry_ms.
ADMIT = (
    _COMMON
    + """
local now = clock(ARGV[1])
local peek = ARGV[2] == '1'
local lease, lease_ms = ARGV[3], tonumber(ARGV[4])
local nw, np = tonumber(ARGV[5]), tonumber(ARGV[6])
local admitted = true
local windows, pools = {}, {}
local a = 7

local function retry_after(z, h, need, window)
  local freed, start = 0, 0
  while true do
    local batch = redis.call('ZRANGE', z, start, start + 99, 'WITHSCORES')
    if #batch == 0 then return -1 end
    local members = {}
    for i = 1, #batch, 2 do members[#members + 1] = batch[i] end
    local units = redis.call('HMGET', h, unpack(members))
    for i = 1, #members do
      freed = freed + (tonumber(units[i]) or 0)
      if freed >= need then return tonumber(batch[2 * i]) + window - now end
    end
    start = start + 100
  end
end

for i = 1, nw do
  local w = {z = KEYS[2 * i - 1], h = KEYS[2 * i], limit = tonumber(ARGV[a]),
             window = tonumber(ARGV[a + 1]), quantum = tonumber(ARGV[a + 2]),
             cost = tonumber(ARGV[a + 3])}
  a = a + 4
  w.used = purge(w.z, w.h, now - w.window)
  w.retry = 0
  if not peek and w.used + w.cost > w.limit then
    admitted = false
    if w.cost > w.limit then w.retry = -1
    else w.retry = retry_after(w.z, w.h, w.used + w.cost - w.limit, w.window) end
  end
  windows[i] = w
end

for j = 1, np do
  local p = {c = KEYS[2 * nw + j], limit = tonumber(ARGV[a])}
  a = a + 1
  redis.call('ZREMRANGEBYSCORE', p.c, '-inf', now)
  p.used = redis.call('ZCARD', p.c)
  p.retry = 0
  if not peek and p.used + 1 > p.limit then
    admitted = false
    p.retry = 1000
    local first = redis.call('ZRANGE', p.c, 0, 0, 'WITHSCORES')
    if #first > 0 then p.retry = math.max(1, math.min(1000, tonumber(first[2]) - now)) end
  end
  pools[j] = p
end

if admitted and not peek then
  for _, w in ipairs(windows) do
    if w.cost > 0 then
      add(w.z, w.h, now, w.quantum, w.window, w.cost)
      w.used = w.used + w.cost
    end
  end
  for _, p in ipairs(pools) do
    redis.call('ZADD', p.c, now + lease_ms, lease)
    redis.call('PEXPIRE', p.c, lease_ms + 1000)
    p.used = p.used + 1
  end
end

local out = {(admitted and not peek) and 1 or 0, now}
for _, w in ipairs(windows) do
  local reset = 0
  if admitted and not peek and w.cost > 0 then  -- the newest bucket is the one just written
    reset = math.floor(now / w.quantum) * w.quantum + w.quantum - 1 + w.window - now
  else
    local newest = redis.call('ZRANGE', w.z, -1, -1, 'WITHSCORES')
    if #newest > 0 then reset = math.max(0, tonumber(newest[2]) + w.window - now) end
  end
  out[#out + 1] = w.used
  out[#out + 1] = reset
  out[#out + 1] = w.retry
end
for _, p in ipairs(pools) do
  out[#out + 1] = p.used
  out[#out + 1] = p.retry
end
for i = 1, #out do out[i] = string.format('%d', out[i]) end
return table.concat(out, ' ')
"""
)

# KEYS: per correction <z>, <h>; then per pool <c>.
# ARGV: now ('' = server time), corrections, lease, then per correction: window_ms, quantum_ms,
#       at_ms, delta.
SETTLE = (
    _COMMON
    + """
local now = clock(ARGV[1])
local nc, lease = tonumber(ARGV[2]), ARGV[3]
local a = 4
for i = 1, nc do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local window, quantum = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local at, delta = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  a = a + 4
  if delta ~= 0 then
    local member = string.format('%d', math.floor(at / quantum))
    local score = redis.call('ZSCORE', z, member)
    if score and tonumber(score) > now - window then
      local units = tonumber(redis.call('HGET', h, member) or '0')
      local changed = math.max(0, units + delta) - units
      redis.call('HINCRBY', h, member, changed)
      redis.call('HINCRBY', h, 'sum', changed)
    elseif delta > 0 then
      purge(z, h, now - window)
      add(z, h, now, quantum, window, delta)
    end
  end
end
for j = 2 * nc + 1, #KEYS do
  redis.call('ZREM', KEYS[j], lease)
end
return 1
"""
)

# KEYS: pool sorted sets; ARGV: now ('' = server time), lease_ms, then the lease of each key.
RENEW = (
    _COMMON
    + """
local now = clock(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local renewed = 0
for i = 1, #KEYS do
  local expiry = redis.call('ZSCORE', KEYS[i], ARGV[i + 2])
  if expiry and tonumber(expiry) > now then
    redis.call('ZADD', KEYS[i], now + lease_ms, ARGV[i + 2])
    redis.call('PEXPIRE', KEYS[i], lease_ms + 1000)
    renewed = renewed + 1
  end
end
return renewed
"""
)
