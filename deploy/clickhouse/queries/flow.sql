-- Every connect, accept and bind with an address (`ritma query flow ADDR[:PORT]`), failed
-- ones too. {addr}: the IP as text (IPv6 compressed, as Rust and ClickHouse print it);
-- {port}: NULL for any port.
SELECT time_ns, seq, event, pid, comm, object_kind, object, flags, lower(hex(actor)) AS actor_hex
FROM events
WHERE node = {node:String} AND win >= {win_min:UInt64} AND win <= {win_max:UInt64}
  AND object_kind = 'flow' AND addr = {addr:String}
  AND (isNull({port:Nullable(UInt16)}) OR port = {port:Nullable(UInt16)})
  AND time_ns >= {from_ns:Int64} AND time_ns < {to_ns:Int64}
ORDER BY win, leaf
