-- Cone matches per node, hour and cone (`ritma query cone-hours`): instances and the times
-- their pattern completed, by the hour the match started. {node}: one node, or '' for all.
SELECT node, intDiv(time_ns, 3600000000000) * 3600000000000 AS hour_ns, cone,
       count() AS matches, sum(count) AS completions
FROM cone_matches
WHERE ({node:String} = '' OR node = {node:String})
  AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
  AND time_ns >= {from_ns:Int64} AND time_ns < {to_ns:Int64}
GROUP BY node, hour_ns, cone
ORDER BY node, hour_ns, cone
