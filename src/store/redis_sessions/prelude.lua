-- Shared by every portcullis session script. ARGV[1] is the key prefix; times are
-- microseconds since the Unix epoch (exact in Lua's doubles until the year 2255).
local p = ARGV[1]

local function session_key(digest) return p .. 'session:' .. digest end

local function is_active(key, now)
  if redis.call('EXISTS', key) == 0 then return false end
  local r = redis.call('HMGET', key, 'revoked_at', 'expires_at')
  return (not r[1]) and ((not r[2]) or tonumber(r[2]) > now)
end

-- Keeps `key` at least until `seconds` (a Unix time), never shortening it.
local function keep_until(key, seconds)
  local ttl = redis.call('TTL', key)
  local now_s = tonumber(redis.call('TIME')[1])
  if ttl == -1 then return end
  if ttl < 0 or now_s + ttl < seconds then redis.call('EXPIREAT', key, seconds) end
end

-- Stores a session from field/value pairs in ARGV starting at `first`. Returns the record
-- (HGETALL) or an error word.
local function insert(first, digest, user, retain)
  local key = session_key(digest)
  if redis.call('EXISTS', key) == 1 then return nil, 'conflict' end
  local id = -redis.call('INCR', p .. 'seq')
  redis.call('HSET', key, 'id', id, 'digest', digest, 'user_id', user)
  for i = first, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
  redis.call('SET', p .. 'id:' .. id, digest)
  redis.call('SADD', p .. 'user:' .. user, digest)
  local family = redis.call('HGET', key, 'family')
  if family then redis.call('SADD', p .. 'family:' .. family, digest) end
  local expires = redis.call('HGET', key, 'expires_at')
  if expires then
    -- Kept past expiry so that a late presentation is answered "expired", not "unknown".
    local seconds = math.floor(tonumber(expires) / 1000000) + retain
    redis.call('EXPIREAT', key, seconds)
    redis.call('EXPIREAT', p .. 'id:' .. id, seconds)
    keep_until(p .. 'user:' .. user, seconds)
    if family then keep_until(p .. 'family:' .. family, seconds) end
  else
    redis.call('PERSIST', p .. 'user:' .. user)
    if family then redis.call('PERSIST', p .. 'family:' .. family) end
  end
  return redis.call('HGETALL', key)
end

-- The digests of a set, dropping members whose session has expired away.
local function members(set)
  local alive = {}
  for _, digest in ipairs(redis.call('SMEMBERS', set)) do
    if redis.call('EXISTS', session_key(digest)) == 1 then
      table.insert(alive, digest)
    else
      redis.call('SREM', set, digest)
    end
  end
  return alive
end
