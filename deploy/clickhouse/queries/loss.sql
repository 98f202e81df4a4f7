-- Events lost per node, hour and reason (`ritma query loss`): what each window's record
-- counts as lost (FORMAT.md §3, LossReason). {node}: one node, or '' for every node.
SELECT node, intDiv(time_ns, 3600000000000) * 3600000000000 AS hour_ns, reason, sum(count) AS lost
FROM loss
WHERE ({node:String} = '' OR node = {node:String})
  AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
GROUP BY node, hour_ns, reason_id, reason
ORDER BY node, hour_ns, reason_id
