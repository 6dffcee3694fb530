-- ARGV: prefix, mode (digest | id | family | user), value, owner (for id), now, reason
local mode, value, owner, now, reason = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local digests = {}
if mode == 'digest' then
  digests = {value}
elseif mode == 'id' then
  local digest = redis.call('GET', p .. 'id:' .. value)
  if digest and redis.call('HGET', session_key(digest), 'user_id') == owner then digests = {digest} end
elseif mode == 'family' then
  digests = members(p .. 'family:' .. value)
else
  digests = members(p .. 'user:' .. value)
end
local revoked = {}
for _, digest in ipairs(digests) do
  local key = session_key(digest)
  if redis.call('EXISTS', key) == 1 and not redis.call('HGET', key, 'revoked_at') then
    redis.call('HSET', key, 'revoked_at', now, 'revoke_reason', reason)
    table.insert(revoked, redis.call('HGETALL', key))
  end
end
return revoked
