-- Admit one call. CLOSED admits (the client only asks here when its view is not
-- CLOSED); OPEN past its wait moves to HALF-OPEN (exactly one caller does it);
-- HALF-OPEN leases one of half_open_max_calls trial slots. A lease held past
-- max_trial_duration (its replica died or hung) re-opens the breaker.
-- Result: 'admitted' (extra = trial serial, 0 outside HALF-OPEN) or
-- 'rejected' (extra = microseconds until a retry may succeed, -1 = never).
if S.mode == 'forced_open' then
  result, extra = 'rejected', -1
elseif S.mode ~= 'normal' or S.state == 'closed' then
  result, extra = 'admitted', 0
else
  if S.state == 'open' then
    local due = S.opened_at + S.open_for
    if NOW < due then
      result, extra = 'rejected', due - NOW
    else
      -- stamped with the moment it became due: time spent OPEN is the wait exactly
      move('half_open', due, 'open timeout elapsed', false)
    end
  end
  if S.state == 'half_open' then
    local oldest = redis.call('ZRANGE', T, 0, 0, 'WITHSCORES')
    if oldest[2] and tonumber(oldest[2]) + TRIAL_LIMIT <= NOW then
      S.trial_timeouts = S.trial_timeouts + 1
      move('open', NOW, 'trial call exceeded max_trial_duration', false)
      result, extra = 'rejected', S.open_for
    elseif S.trial_ok + redis.call('ZCARD', T) >= HALF_OPEN_MAX then
      result = 'rejected'
      extra = oldest[2] and math.max(tonumber(oldest[2]) + TRIAL_LIMIT - NOW, 0) or 0
    else
      S.serial = S.serial + 1
      redis.call('ZADD', T, NOW, S.serial)
      dirty = true
      result, extra = 'admitted', S.serial
    end
  end
end
