-- Record how a permitted call ended. ARGV[13] outcome (success, failure, or release:
-- a cancelled or excluded trial), ARGV[14] the permit's generation, ARGV[15] its
-- trial serial (0 = not a trial). (Window policies use window.lua.)
-- An outcome for an older generation changes nothing: result 'late'.
-- Result: 'late', 'counted', 'tripped' (moved to OPEN) or 'closed'.
local outcome, gen, trial = ARGV[13], tonumber(ARGV[14]), tonumber(ARGV[15])
if gen ~= S.gen then
  result = 'late'
elseif trial > 0 then
  if redis.call('ZREM', T, trial) == 0 then
    result = 'late'  -- the lease is gone (expired and the breaker moved on)
  elseif outcome == 'failure' then
    move('open', NOW, 'trial call failed', false)
    result = 'tripped'
  elseif outcome == 'success' then
    S.trial_ok = S.trial_ok + 1
    dirty = true
    if S.trial_ok >= SUCCESS_THRESHOLD then
      move('closed', NOW, 'trial calls succeeded', false)
      result = 'closed'
    else
      result = 'counted'
    end
  else
    dirty, result = true, 'counted'  -- cancelled or excluded: the slot is free again
  end
elseif outcome == 'failure' then
  S.count = S.count + 1
  dirty = true
  if S.count == 1 then announce = true end  -- replicas learn the count is not zero
  if S.count >= FAILURE_THRESHOLD and S.mode == 'normal' and S.state == 'closed' then
    move('open', NOW, trip_reason(), false)
    result = 'tripped'
  else
    result = 'counted'
  end
elseif outcome == 'success' and POLICY == 'consecutive' and S.count > 0 then
  S.count = 0
  dirty, announce, result = true, true, 'counted'
else
  result = 'counted'
end
