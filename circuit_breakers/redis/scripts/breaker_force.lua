-- Manual control (rows M1-M3). ACT[1]: 'open' (forced), 'close' or 'reset'.
local action = ACT[1]
if action == 'open' then
  move('open', true, false)
elseif action == 'close' then
  move('closed', false, false)
elseif action == 'reset' then
  move('closed', false, true)
else
  return redis.error_reply('unknown action ' .. tostring(action))
end
return reply({})
