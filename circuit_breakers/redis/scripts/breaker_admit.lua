-- Admit one call: CLOSED always, HALF_OPEN while a trial permit is free.
refresh()
local admitted = 0
if s.state == 'closed' then
  admitted = 1
elseif s.state == 'half_open' and s.in_flight < HALF_OPEN_MAX then
  s.in_flight = s.in_flight + 1
  if s.trial_started == 0 then s.trial_started = now end
  dirty, admitted = true, 1
end
return reply({num(admitted)})
