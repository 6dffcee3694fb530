-- ARGV: prefix, digest, user_id, max_active (-1: none), now, retain seconds, field/value...
local digest, user = ARGV[2], ARGV[3]
local max_active, now, retain = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if max_active >= 0 then
  local active = 0
  for _, d in ipairs(members(p .. 'user:' .. user)) do
    if is_active(session_key(d), now) then active = active + 1 end
  end
  if active >= max_active then return {'limit'} end
end
local record, problem = insert(7, digest, user, retain)
if not record then return {problem} end
return {'ok', record}
