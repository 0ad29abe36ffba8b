-- Observe the state (T1, T2 on a status read); ACT[1] 'full' adds the window's totals.
return reply(observe(ACT[1] == 'full'))
