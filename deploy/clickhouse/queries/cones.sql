-- Cone matches (`ritma query cones`), optionally of one cone ('' for all), with the
-- process whose event completed the match (its seq is the match's last_seq).
SELECT time_ns, cone, cone_version AS version, count, first_seq, last_seq,
       if(e_found = 1, concat(toString(e_pid), ' ', if(e_comm = '', '\x3F', e_comm)), '') AS process,
       arrayMap((n, v) -> concat(n, '=', v), binding_names, binding_values) AS bindings,
       if(e_found = 1, lower(hex(e_actor)), '') AS actor_hex
FROM
(
    SELECT win, leaf, time_ns, cone, cone_version, count, first_seq, last_seq,
           binding_names, binding_values
    FROM cone_matches
    WHERE node = {node:String} AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
      AND ({cone:String} = '' OR cone = {cone:String})
      AND time_ns >= {from_ns:Int64} AND time_ns < {to_ns:Int64}
) AS c
ANY LEFT JOIN
(
    SELECT win, seq AS last_seq, pid AS e_pid, comm AS e_comm, actor AS e_actor, 1 AS e_found
    FROM events
    WHERE node = {node:String} AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
      AND seq IN (SELECT last_seq FROM cone_matches
                  WHERE node = {node:String} AND win >= {win_min:UInt64} AND win <= {win_max:UInt64})
) AS e USING (win, last_seq)
ORDER BY win, leaf
