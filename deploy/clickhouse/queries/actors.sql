-- Processes seen (`ritma query actors`), optionally with this pid, command name or executable
-- (its full path or its file name); NULL (pid) or '' for no filter. Per actor: first and last window
-- start, windows seen, and its latest record. Also the input of `ritma query tree`.
SELECT first_ns, last_ns, windows, p AS pid, pp AS ppid, u AS uid, eu AS euid,
       c AS comm, e AS exe, actor_hex, parent_hex
FROM
(
    SELECT min(time_ns) AS first_ns, max(time_ns) AS last_ns, count() AS windows,
           argMax(pid, win) AS p, argMax(ppid, win) AS pp, argMax(uid, win) AS u,
           argMax(euid, win) AS eu, argMax(comm, win) AS c, argMax(exe, win) AS e,
           lower(hex(actor)) AS actor_hex, lower(hex(argMax(parent, win))) AS parent_hex
    FROM actors
    WHERE node = {node:String} AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
      AND (isNull({pid:Nullable(UInt32)}) OR pid = {pid:Nullable(UInt32)})
      AND ({comm:String} = '' OR comm = {comm:String})
      AND ({exe:String} = '' OR (exe != '' AND (exe = {exe:String}
           OR arrayElement(splitByChar('/', exe), -1) = {exe:String})))
    GROUP BY actor
)
ORDER BY first_ns, actor_hex
