-- Every event on a path (`ritma query path PATH`): opens, execs, unlinks, failed ones too,
-- and renames to it and away from it (an atom of a rename names its destination, so a
-- rename away is found through the window's file_to_file edge from the path).
SELECT time_ns, seq, event, pid, comm, object_kind, object, flags, lower(hex(actor)) AS actor_hex,
       multiIf(from_here, 'from the path', event = 'rename', 'to the path', '') AS renamed
FROM
(
    SELECT *, event = 'rename' AND (win, object_id) IN
        (SELECT win, dst FROM edges
         WHERE node = {node:String} AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
           AND kind = 'file_to_file' AND src_kind = 'path' AND src_value = {path:String}) AS from_here
    FROM events
    WHERE node = {node:String} AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
)
WHERE ((object_kind = 'path' AND object = {path:String}) OR from_here)
  AND time_ns >= {from_ns:Int64} AND time_ns < {to_ns:Int64}
ORDER BY win, leaf
