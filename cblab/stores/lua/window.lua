-- A sliding-window policy, shared: add one replica's batch of outcomes to the
-- breaker's shared window (KEYS[3]) and trip when the whole window's rates say so.
-- Replicas batch successes (a time window: per bucket; a count window: a few calls)
-- and send each failure at once, so a success reaches the window at most one bucket
-- late. ARGV[13] generation of the batch, ARGV[14] kind (time, count),
-- ARGV[15..17] calls, failures, slow calls in the batch, ARGV[18] the batch's
-- outcomes in order (count window: o ok, s slow ok, f failure, x slow failure),
-- ARGV[19] size (count) or window length (time, us), ARGV[20] bucket length (us),
-- ARGV[21] minimum calls, ARGV[22] failure-rate threshold, ARGV[23] slow-call-rate
-- threshold (-1: slow calls do not count). Result: 'late', 'counted' or 'tripped'.
local W = KEYS[3]
local gen, kind = tonumber(ARGV[13]), ARGV[14]
local calls, failures, slow = 0, 0, 0
if gen ~= S.gen or S.state ~= 'closed' then
  result = 'late'  -- outcomes of a closed period that has ended
else
  if kind == 'count' then
    local size = tonumber(ARGV[19])
    local seq = (redis.call('GET', W) or '') .. ARGV[18]
    if #seq > size then seq = string.sub(seq, #seq - size + 1) end
    redis.call('SET', W, seq, 'PX', TTL)
    calls = #seq
    for i = 1, #seq do
      local c = string.sub(seq, i, i)
      if c == 'f' or c == 'x' then failures = failures + 1 end
      if c == 's' or c == 'x' then slow = slow + 1 end
    end
  else
    local width, bucket_len = tonumber(ARGV[19]), tonumber(ARGV[20])
    local bucket = math.floor(NOW / bucket_len)
    local oldest = bucket - math.floor(width / bucket_len + 0.5) + 1
    redis.call('HINCRBY', W, 'c' .. bucket, tonumber(ARGV[15]))
    redis.call('HINCRBY', W, 'f' .. bucket, tonumber(ARGV[16]))
    redis.call('HINCRBY', W, 's' .. bucket, tonumber(ARGV[17]))
    local all = redis.call('HGETALL', W)
    for i = 1, #all, 2 do
      local b = tonumber(string.sub(all[i], 2))
      if b < oldest then
        redis.call('HDEL', W, all[i])
      else
        local field, n = string.sub(all[i], 1, 1), tonumber(all[i + 1])
        if field == 'c' then calls = calls + n
        elseif field == 'f' then failures = failures + n
        else slow = slow + n end
      end
    end
    redis.call('PEXPIRE', W, TTL)
  end
  result = 'counted'
  local minimum, rate_limit = tonumber(ARGV[21]), tonumber(ARGV[22])
  local slow_limit = tonumber(ARGV[23])
  if S.mode == 'normal' and calls >= minimum and calls > 0 then
    local reason = nil
    if failures >= rate_limit * calls then
      reason = string.format('failure rate %d%% reached %d%%',
        math.floor(failures / calls * 100 + 0.5), math.floor(rate_limit * 100 + 0.5))
    elseif slow_limit >= 0 and slow >= slow_limit * calls then
      reason = string.format('slow-call rate %d%% reached %d%%',
        math.floor(slow / calls * 100 + 0.5), math.floor(slow_limit * 100 + 0.5))
    end
    if reason then
      move('open', NOW, reason, false)
      result = 'tripped'
    end
  end
end
extra = calls * 1000000 + failures  -- the shared window's totals, for status
