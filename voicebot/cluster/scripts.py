"""The Lua that makes fleet-wide admission atomic: one script run per decision, so two instances
admitting at the same moment can never both take the last slot.

Slots are sorted-set members scored by their expiry (Redis's own clock, `TIME`, so instances'
clocks never matter): a slot nobody refreshes (its instance died) simply falls out of the count.
"""

from __future__ import annotations

#: KEYS: slots, subject slots, subject admissions (rate window)
#: ARGV: slot, ttl_ms, max_calls, max_per_subject (0: no subject), per_minute (0: no rate)
#: → {1} admitted (or already held), {0, why} refused
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot, ttl = ARGV[1], tonumber(ARGV[2])
local max_calls, per_subject, per_minute = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], slot) then
  redis.call('ZADD', KEYS[1], now + ttl, slot)
  if per_subject > 0 then redis.call('ZADD', KEYS[2], now + ttl, slot) end
  return {1}
end
if redis.call('ZCARD', KEYS[1]) >= max_calls then return {0, 'fleet'} end
if per_subject > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= per_subject then return {0, 'subject'} end
  if per_minute > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60000)
    if redis.call('ZCARD', KEYS[3]) >= per_minute then return {0, 'rate'} end
    redis.call('ZADD', KEYS[3], now, slot)
    redis.call('PEXPIRE', KEYS[3], 60000)
  end
  redis.call('ZADD', KEYS[2], now + ttl, slot)
  redis.call('PEXPIRE', KEYS[2], ttl * 2)
end
redis.call('ZADD', KEYS[1], now + ttl, slot)
return {1}
"""

#: Refresh this instance's live slots and its presence; after an outage, re-add them whatever
#: the counts (the calls are running: the fleet must count them again).
#: KEYS: slots, instances, this instance's calls hash
#: ARGV: ttl_ms, instance id, then pairs of (slot, subject slots key or '')
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[3], ttl)
for i = 3, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  if ARGV[i + 1] ~= '' then
    redis.call('ZADD', ARGV[i + 1], now + ttl, ARGV[i])
    redis.call('PEXPIRE', ARGV[i + 1], ttl * 2)
  end
end
return redis.call('ZCARD', KEYS[1])
"""

#: KEYS: instances → live instance ids
LIVE_INSTANCES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
"""
