-- Executables never seen before on a node (`ritma query new-binaries`): those whose first exec
-- (or first sighting running at capture start, `present`) in all of the node's history falls
-- in the range, with that first event. {node}: one node, or '' for all.
SELECT node, first_ns, binary AS exe, ev AS event, p AS pid, c AS comm, actor_hex, execs
FROM
(
    SELECT node, object AS binary,
           argMin(time_ns, (win, leaf)) AS first_ns,
           argMin(event, (win, leaf)) AS ev,
           argMin(pid, (win, leaf)) AS p,
           argMin(comm, (win, leaf)) AS c,
           lower(hex(argMin(actor, (win, leaf)))) AS actor_hex,
           countIf(event = 'exec') AS execs
    FROM events
    WHERE ({node:String} = '' OR node = {node:String})
      AND event IN ('exec', 'present') AND object_kind = 'path'
    GROUP BY node, object
)
WHERE first_ns >= {from_ns:Int64} AND first_ns < {to_ns:Int64}
ORDER BY node, first_ns, exe
