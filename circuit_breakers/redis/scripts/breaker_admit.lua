-- Admit one call (rows A1-A4): the fields of reply, then 1 if admitted, 0 if refused.
return reply({num(admit())})
