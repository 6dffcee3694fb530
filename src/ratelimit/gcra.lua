-- GCRA (generic cell rate algorithm), atomic in Redis, on Redis's own clock so that every
-- instance agrees on "now". KEYS[1]: the bucket. ARGV[1]: emission interval T, ARGV[2]:
-- burst (cells), both as microseconds / counts; ARGV[3]: the mode, "check" (decide and charge
-- an admitted request), "peek" (decide only) or "charge" (charge only, overdrawing if need
-- be: a deferred policy charged after the answer). The bucket stores its theoretical arrival
-- time (TAT) in microseconds and expires when it has refilled.
-- Returns {allowed (0/1), remaining, retry_after_us, reset_us}.
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local mode = ARGV[3] or 'check'
local tau = t * (burst - 1)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tau
if mode ~= 'charge' and now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
if mode == 'peek' then
  local remaining = math.floor((now + tau - tat) / t) + 1
  if remaining > burst then remaining = burst end
  return {1, remaining, 0, tat - now}
end
local new_tat = tat + t
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
local remaining = math.floor((now + tau + t - new_tat) / t)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0, new_tat - now}
