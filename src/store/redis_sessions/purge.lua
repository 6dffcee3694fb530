-- ARGV: prefix, before (microseconds), then session keys found by SCAN. Deletes those that
-- expired or were revoked before `before`; their set memberships are dropped lazily
-- (`members`). Returns how many were deleted.
local before = tonumber(ARGV[2])
local deleted = 0
for i = 3, #ARGV do
  local key = ARGV[i]
  local r = redis.call('HMGET', key, 'revoked_at', 'expires_at', 'id')
  local revoked, expires = tonumber(r[1]), tonumber(r[2])
  if (revoked and revoked < before) or (expires and expires < before) then
    redis.call('DEL', key)
    if r[3] then redis.call('DEL', p .. 'id:' .. r[3]) end
    deleted = deleted + 1
  end
end
return deleted
