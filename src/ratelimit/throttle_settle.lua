-- Takes a reserved login attempt back (see throttle.rs).
-- KEYS: account, address, known address. ARGV: recorded (0/1), succeeded (0/1),
-- has address (0/1), trust the known address for (s).
local recorded, succeeded = ARGV[1] == '1', ARGV[2] == '1'
local function refund(key)
  local count = tonumber(redis.call('HGET', key, 'count') or 0)
  if count > 0 then redis.call('HINCRBY', key, 'count', -1) end
end
if recorded and ARGV[3] == '1' then refund(KEYS[2]) end
if succeeded then
  redis.call('DEL', KEYS[1])
  if ARGV[3] == '1' then redis.call('SET', KEYS[3], 1, 'EX', tonumber(ARGV[4])) end
elseif recorded then
  refund(KEYS[1])
end
return 0
