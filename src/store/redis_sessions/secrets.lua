-- One-time secrets (SecretStore). ARGV: prefix, operation, kind, then the operation's own.
-- A secret is a hash at p..'secret:'..kind..':'..digest (id, created_at, expires_at, and when
-- set: subject, payload, attempts_left, ended_at), kept a day past its expiry; the digests of
-- a subject's secrets of a kind are the set p..'secrets:'..kind..':'..subject.
local op, kind = ARGV[2], ARGV[3]

local function secret_key(digest) return p .. 'secret:' .. kind .. ':' .. digest end
local function subject_set(subject) return p .. 'secrets:' .. kind .. ':' .. subject end

local function is_live(key, now)
  local r = redis.call('HMGET', key, 'ended_at', 'expires_at', 'attempts_left')
  if not r[2] then return false end
  return (not r[1]) and tonumber(r[2]) > now and ((not r[3]) or tonumber(r[3]) > 0)
end

-- The digests of a subject's live secrets, dropping members that expired from Redis.
local function live_of(subject, now)
  local set, live = subject_set(subject), {}
  for _, digest in ipairs(redis.call('SMEMBERS', set)) do
    local key = secret_key(digest)
    if redis.call('EXISTS', key) == 0 then
      redis.call('SREM', set, digest)
    elseif is_live(key, now) then
      table.insert(live, digest)
    end
  end
  return live
end

if op == 'insert' then
  -- digest, subject ('' for nobody), replaces ('1'), created_at, expires_at, attempts ('' for
  -- no limit), payload ('' for none), seconds to keep it past its expiry.
  local digest, subject, replaces = ARGV[4], ARGV[5], ARGV[6]
  local created, expires, attempts, payload = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
  local key = secret_key(digest)
  if redis.call('EXISTS', key) == 1 then return {'conflict'} end
  if subject ~= '' and replaces == '1' then
    for _, earlier in ipairs(live_of(subject, tonumber(created))) do
      redis.call('HSET', secret_key(earlier), 'ended_at', created)
    end
  end
  local id = redis.call('INCR', p .. 'secret_seq')
  redis.call('HSET', key, 'id', id, 'created_at', created, 'expires_at', expires)
  if attempts ~= '' then redis.call('HSET', key, 'attempts_left', attempts) end
  if payload ~= '' then redis.call('HSET', key, 'payload', payload) end
  local until_s = math.floor(tonumber(expires) / 1000000) + tonumber(ARGV[11])
  redis.call('EXPIREAT', key, until_s)
  if subject ~= '' then
    redis.call('HSET', key, 'subject', subject)
    redis.call('SADD', subject_set(subject), digest)
    keep_until(subject_set(subject), until_s)
  end
  return {'ok', id}
elseif op == 'consume' then
  -- digest, now
  local key, now = secret_key(ARGV[4]), ARGV[5]
  if not is_live(key, tonumber(now)) then return {'none'} end
  redis.call('HSET', key, 'ended_at', now)
  return {'ok', redis.call('HGETALL', key)}
elseif op == 'guess' then
  -- digest, subject, now. A right guess spends its secret; a wrong one takes an attempt from
  -- each live secret of the subject and answers what each has left (-1: no limit).
  local digest, subject, now = ARGV[4], ARGV[5], ARGV[6]
  local live = live_of(subject, tonumber(now))
  if #live == 0 then
    -- Dead only because its time ran out: not ended, not out of attempts.
    for _, member in ipairs(redis.call('SMEMBERS', subject_set(subject))) do
      local r = redis.call('HMGET', secret_key(member), 'ended_at', 'expires_at', 'attempts_left')
      if r[2] and (not r[1]) and ((not r[3]) or tonumber(r[3]) > 0) then return {'expired'} end
    end
    return {'none'}
  end
  for _, candidate in ipairs(live) do
    if candidate == digest then
      local key = secret_key(digest)
      redis.call('HSET', key, 'ended_at', now)
      return {'right', redis.call('HGETALL', key)}
    end
  end
  local left = {'wrong'}
  for _, candidate in ipairs(live) do
    local key = secret_key(candidate)
    if redis.call('HEXISTS', key, 'attempts_left') == 1 then
      table.insert(left, redis.call('HINCRBY', key, 'attempts_left', -1))
    else
      table.insert(left, -1)
    end
  end
  return left
elseif op == 'revoke' then
  -- subject, now
  local now, revoked = ARGV[5], 0
  for _, digest in ipairs(live_of(ARGV[4], tonumber(now))) do
    redis.call('HSET', secret_key(digest), 'ended_at', now)
    revoked = revoked + 1
  end
  return revoked
elseif op == 'purge' then
  -- before, then secret keys found by SCAN: deletes those that expired or ended before
  -- `before` (their set memberships are dropped lazily by live_of).
  local before, deleted = tonumber(ARGV[4]), 0
  for i = 5, #ARGV do
    local r = redis.call('HMGET', ARGV[i], 'ended_at', 'expires_at')
    local ended, expires = tonumber(r[1]), tonumber(r[2])
    if (ended and ended < before) or (expires and expires < before) then
      redis.call('DEL', ARGV[i])
      deleted = deleted + 1
    end
  end
  return deleted
end
return redis.error_reply('unknown operation ' .. tostring(op))
