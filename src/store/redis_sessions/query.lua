-- ARGV: prefix, mode (digest | user | family_active | touch), value, extra
local mode, value = ARGV[2], ARGV[3]
if mode == 'digest' then
  local key = session_key(value)
  if redis.call('EXISTS', key) == 0 then return {} end
  return {redis.call('HGETALL', key)}
elseif mode == 'user' then
  local records = {}
  for _, digest in ipairs(members(p .. 'user:' .. value)) do
    table.insert(records, redis.call('HGETALL', session_key(digest)))
  end
  return records
elseif mode == 'family_active' then
  local now = tonumber(ARGV[4])
  for _, digest in ipairs(members(p .. 'family:' .. value)) do
    if is_active(session_key(digest), now) then return 1 end
  end
  return 0
else
  -- touch: ARGV[3..] are id/time pairs; last_used_at only moves forward.
  for i = 3, #ARGV, 2 do
    local digest = redis.call('GET', p .. 'id:' .. ARGV[i])
    if digest then
      local key = session_key(digest)
      local last = redis.call('HGET', key, 'last_used_at')
      if redis.call('EXISTS', key) == 1 and ((not last) or tonumber(last) < tonumber(ARGV[i + 1])) then
        redis.call('HSET', key, 'last_used_at', ARGV[i + 1])
      end
    end
  end
  return 0
end
