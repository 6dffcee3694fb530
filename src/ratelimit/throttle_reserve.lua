-- The login throttle's decision and its count in one atomic step (see throttle.rs).
-- KEYS: account, address, known address (placeholders when absent).
-- ARGV: now (µs), forget after (ms), account free, address free, base (µs), cap (µs),
--       has address (0/1), has known (0/1).
-- Returns the wait in µs; 0 means admitted, and the attempt is counted as a failure.
local now = tonumber(ARGV[1])
local forget_ms = tonumber(ARGV[2])
local has_address = ARGV[7] == '1'
local base, cap = tonumber(ARGV[5]), tonumber(ARGV[6])

local function remaining(key, free)
  local count, last = unpack(redis.call('HMGET', key, 'count', 'last'))
  if not count then return 0 end
  count, last = tonumber(count), tonumber(last or 0)
  if now - last >= forget_ms * 1000 then return 0 end
  if count < free then return 0 end
  local wait = math.min(base * 2 ^ math.min(count - free, 30), cap)
  return math.max(0, wait - (now - last))
end

local wait = 0
if has_address then wait = math.max(wait, remaining(KEYS[2], tonumber(ARGV[4]))) end
local known = ARGV[8] == '1' and redis.call('EXISTS', KEYS[3]) == 1
if not known then wait = math.max(wait, remaining(KEYS[1], tonumber(ARGV[3]))) end
if wait > 0 then return math.ceil(wait) end

local function count(key)
  local last = tonumber(redis.call('HGET', key, 'last') or 0)
  if now - last >= forget_ms * 1000 then redis.call('DEL', key) end
  redis.call('HINCRBY', key, 'count', 1)
  redis.call('HSET', key, 'last', now)
  redis.call('PEXPIRE', key, forget_ms)
end
count(KEYS[1])
if has_address then count(KEYS[2]) end
return 0
