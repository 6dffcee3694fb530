-- ARGV: prefix, presented digest, now, retain seconds, replacement digest, user_id,
-- replacement field/value...
local presented, now, retain = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local replacement, user = ARGV[5], ARGV[6]
local key = session_key(presented)
if redis.call('EXISTS', key) == 0 then return {'missing'} end
if not is_active(key, now) then return {'rejected', redis.call('HGETALL', key)} end
if redis.call('EXISTS', session_key(replacement)) == 1 then return {'conflict'} end
redis.call('HSET', key, 'revoked_at', ARGV[3], 'revoke_reason', 'rotated')
local previous = redis.call('HGETALL', key)
local record, problem = insert(7, replacement, user, retain)
if not record then return {problem} end
return {'rotated', previous, record}
