"""The Lua script behind :class:`~smtpkit.quotas.RedisQuotaStore`: one call per operation.

Redis runs a script atomically (no other command runs in between), so a reservation's
read-check-write is one step for every client of the server: the store's one round trip.
It is a port of :mod:`smtpkit.quotas._ledger` (same log, views, clock and drop rule), plus
the *epoch* that tells a client the account's counts vanished under it (a restart without
persistence, FLUSHALL, a failover to an empty replica).

Keys (one hash tag per account, so a Redis Cluster keeps them in one slot)::

    KEYS[1]  <prefix>{<account>}:log        sorted set: "entry|messages|recipients" by time
    KEYS[2]  <prefix>{<account>}:state      hash: clock, and per window W: W:m W:r W:c
    KEYS[3]  <prefix>{<account>}:epoch      hash: id, lost_at            (never expires)
    KEYS[4]  <prefix>{<account>}:exhausted  string: until                (expires then)

ARGV: op, now, known epoch, new epoch, count when lost ("1"/"0"), member, messages,
recipients, retention, margin, until, window count, then per window: seconds, allowed
messages, allowed recipients ("" when that unit is not limited).

The log and the state expire ``retention + margin`` seconds after the last write: by then
every record has left every window. Numbers travel as strings written with ``%.17g``, which
gives back the same double, so the boundaries compared here are exactly the client's.
"""

from __future__ import annotations

import hashlib

__all__ = ["SCRIPT", "SHA1"]

SCRIPT = r"""
local log, state, epochkey, xkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local now_s = ARGV[2]

local function fmt(x) return string.format('%.17g', x) end
local function weights(member)
  local m, r = string.match(member, '|(%d+)|(%d+)$')
  return tonumber(m), tonumber(r)
end

if op == 'release' then
  local at = redis.call('ZSCORE', log, ARGV[6])
  if at then
    at = tonumber(at)
    redis.call('ZREM', log, ARGV[6])
    local m, r = weights(ARGV[6])
    local fields = redis.call('HGETALL', state)
    for i = 1, #fields, 2 do
      local w = string.match(fields[i], '^(.+):c$')
      if w and at > tonumber(fields[i + 1]) then
        redis.call('HINCRBY', state, w .. ':m', -m)
        redis.call('HINCRBY', state, w .. ':r', -r)
      end
    end
  end
  return {'ok'}
end

local margin = tonumber(ARGV[10])

if op == 'exhaust' then
  local until_ = tonumber(ARGV[11])
  local current = redis.call('GET', xkey)
  if (not current) or until_ > tonumber(current) then
    local ms = math.floor((until_ - now + margin) * 1000)
    if ms < 1000 then ms = 1000 end
    redis.call('SET', xkey, ARGV[11], 'PX', ms)
  end
  return {'ok'}
end

-- The epoch: did this account's counts vanish since this client last saw them?
local epoch = redis.call('HGET', epochkey, 'id')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', epochkey, 'id', epoch)
  if ARGV[3] ~= '' then redis.call('HSET', epochkey, 'lost_at', ARGV[2]) end
elseif ARGV[3] ~= '' and ARGV[3] ~= epoch then
  redis.call('HSETNX', epochkey, 'lost_at', ARGV[2])
end
local lost_at = tonumber(redis.call('HGET', epochkey, 'lost_at') or '')

-- The account's clock never goes back.
local clock_s = redis.call('HGET', state, 'clock')
if clock_s and tonumber(clock_s) > now then
  now = tonumber(clock_s)
  now_s = clock_s
end

local retention = tonumber(ARGV[9])
local nwin = tonumber(ARGV[12])

-- Views: every window any client asked about; a new one is built from the log.
local views = {}
local fields = redis.call('HGETALL', state)
for i = 1, #fields, 2 do
  local w = string.match(fields[i], '^(.+):c$')
  if w then views[w] = fields[i + 1] end
end
for i = 0, nwin - 1 do
  local w = ARGV[13 + 3 * i]
  if not views[w] then
    local cutoff = fmt(now - tonumber(w))
    local msum, rsum = 0, 0
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', log, '(' .. cutoff, '+inf')) do
      local m, r = weights(member)
      msum = msum + m
      rsum = rsum + r
    end
    redis.call('HSET', state, w .. ':m', msum, w .. ':r', rsum, w .. ':c', cutoff)
    views[w] = cutoff
  end
end

-- Advance every view to now - window; drop what every view has passed.
local horizon = now - retention
for w, old in pairs(views) do
  local cutoff = now - tonumber(w)
  if cutoff > tonumber(old) then
    local cutoff_s = fmt(cutoff)
    local msum, rsum = 0, 0
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', log, '(' .. old, cutoff_s)) do
      local m, r = weights(member)
      msum = msum + m
      rsum = rsum + r
    end
    if msum > 0 or rsum > 0 then
      redis.call('HINCRBY', state, w .. ':m', -msum)
      redis.call('HINCRBY', state, w .. ':r', -rsum)
    end
    redis.call('HSET', state, w .. ':c', cutoff_s)
    views[w] = cutoff_s
  end
  if tonumber(views[w]) < horizon then horizon = tonumber(views[w]) end
end
redis.call('ZREMRANGEBYSCORE', log, '-inf', fmt(horizon))
redis.call('HSET', state, 'clock', now_s)
local ttl = math.floor((retention + margin) * 1000)
redis.call('PEXPIRE', state, ttl)
redis.call('PEXPIRE', log, ttl)

local exhausted = redis.call('GET', xkey)
if exhausted and tonumber(exhausted) <= now then exhausted = false end

if op == 'usage' then
  local out = {'usage', epoch, now_s, exhausted or ''}
  for i = 0, nwin - 1 do
    local w = ARGV[13 + 3 * i]
    local counts = redis.call('HMGET', state, w .. ':m', w .. ':r')
    table.insert(out, tonumber(counts[1]) or 0)
    table.insert(out, tonumber(counts[2]) or 0)
  end
  return out
end

-- reserve
local known = redis.call('ZSCORE', log, ARGV[6])
if known then return {'granted', epoch, known} end

if lost_at and ARGV[5] ~= '1' and nwin > 0 then
  local longest = 0
  for i = 0, nwin - 1 do
    local w = tonumber(ARGV[13 + 3 * i])
    if w > longest then longest = w end
  end
  if now < lost_at + longest then
    return {'lost', epoch, fmt(lost_at + longest - now)}
  end
end

if exhausted then
  return {'exhausted', epoch, exhausted, fmt(tonumber(exhausted) - now)}
end

local asked = {m = tonumber(ARGV[7]), r = tonumber(ARGV[8])}
local worst = nil
for i = 0, nwin - 1 do
  local w = ARGV[13 + 3 * i]
  local seconds = tonumber(w)
  local allowed = {m = tonumber(ARGV[14 + 3 * i]), r = tonumber(ARGV[15 + 3 * i])}
  local counts = redis.call('HMGET', state, w .. ':m', w .. ':r')
  local used = {m = tonumber(counts[1]) or 0, r = tonumber(counts[2]) or 0}
  for _, unit in ipairs({'m', 'r'}) do
    if allowed[unit] and used[unit] + asked[unit] > allowed[unit] then
      -- How long until enough of the oldest records leave the window.
      local need = used[unit] + asked[unit] - allowed[unit]
      local freed, at, offset = 0, now, 0
      while freed < need do
        local batch = redis.call('ZRANGEBYSCORE', log, '(' .. views[w], '+inf',
                                 'WITHSCORES', 'LIMIT', offset, 128)
        if #batch == 0 then break end
        for j = 1, #batch, 2 do
          local m, r = weights(batch[j])
          if unit == 'm' then freed = freed + m else freed = freed + r end
          at = tonumber(batch[j + 1]) + seconds
          if freed >= need then break end
        end
        offset = offset + 128
      end
      local wait = at - now
      if wait < 0 then wait = 0 end
      if (not worst) or wait > worst[5] then
        worst = {w, unit, used[unit], allowed[unit], wait}
      end
    end
  end
end
if worst then
  return {'over', epoch, worst[1], worst[2], worst[3], worst[4], fmt(worst[5])}
end

redis.call('ZADD', log, now_s, ARGV[6])
redis.call('PEXPIRE', log, ttl)  -- the first record has just created the log
for w, _ in pairs(views) do
  redis.call('HINCRBY', state, w .. ':m', asked.m)
  redis.call('HINCRBY', state, w .. ':r', asked.r)
end
return {'granted', epoch, now_s}
"""

#: What EVALSHA names the script by.
SHA1 = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()
