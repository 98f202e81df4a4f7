-- Outbound connections by executable (`ritma query egress`): connects to an IP address (not
-- a unix socket), the failed ones, distinct destinations, first and last. {node}: one node,
-- or '' for all.
SELECT node, exe, count() AS connects, countIf(has(flags, 'failed')) AS failed,
       uniqExact(object) AS destinations, min(time_ns) AS first_ns, max(time_ns) AS last_ns
FROM events
WHERE ({node:String} = '' OR node = {node:String})
  AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
  AND event = 'connect' AND object_kind = 'flow' AND addr != ''
  AND time_ns >= {from_ns:Int64} AND time_ns < {to_ns:Int64}
GROUP BY node, exe
ORDER BY node, connects DESC, exe
