-- Every event of an actor (`ritma query events ACTOR`), in store order.
-- {actor}: 32 hex digits; {win_min}/{win_max}: the windows overlapping the time range;
-- {from_ns}/{to_ns}: the range itself (ns since the epoch, to exclusive).
SELECT time_ns, seq, event, pid, comm, object_kind, object, flags, lower(hex(actor)) AS actor_hex
FROM events
WHERE node = {node:String} AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
  AND actor = unhex({actor:String})
  AND time_ns >= {from_ns:Int64} AND time_ns < {to_ns:Int64}
ORDER BY win, leaf
