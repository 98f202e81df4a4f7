# Sourced by the ClickHouse benchmarks: starts Debian's clickhouse-server 18.16 as a child
# process with the tests' minimal config (tests/clickhouse_server.rs) on free loopback ports,
# under $work, and stops it on exit. Needs $work, $server_bin and $ch_lib; sets $ch_pid, $url
# and `sql`, which runs one query and fails the benchmark on a server error.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(free_port)
tcp=$(free_port)
ch="$work/ch"
mkdir -p "$ch/log"
cat >"$ch/config.xml" <<EOF
<?xml version="1.0"?><yandex>
 <logger><level>warning</level><log>$ch/log/server.log</log><errorlog>$ch/log/error.log</errorlog><size>10M</size><count>1</count></logger>
 <http_port>$http</http_port><tcp_port>$tcp</tcp_port><listen_host>127.0.0.1</listen_host>
 <path>$ch/data/</path><tmp_path>$ch/tmp/</tmp_path><user_files_path>$ch/user_files/</user_files_path>
 <format_schema_path>$ch/format_schemas/</format_schema_path><users_config>$ch/users.xml</users_config>
 <default_profile>default</default_profile><default_database>default</default_database>
 <mark_cache_size>67108864</mark_cache_size><uncompressed_cache_size>67108864</uncompressed_cache_size>
 <max_concurrent_queries>50</max_concurrent_queries><mlock_executable>false</mlock_executable>
</yandex>
EOF
cat >"$ch/users.xml" <<'EOF'
<?xml version="1.0"?><yandex>
 <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
 <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
 <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
LD_LIBRARY_PATH="$ch_lib" "$server_bin" --config-file="$ch/config.xml" </dev/null >"$ch/log/stdout.log" 2>&1 &
ch_pid=$!
trap 'kill "$ch_pid" 2>/dev/null || true; wait "$ch_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
url="http://127.0.0.1:$http"
for i in $(seq 300); do
  if [ "$(curl -s "$url/ping" || true)" = "Ok." ]; then break; fi
  if ! kill -0 "$ch_pid" 2>/dev/null; then
    echo "clickhouse-server exited:" >&2; cat "$ch/log/stdout.log" "$ch/log/error.log" >&2 2>/dev/null || true; exit 1
  fi
  if [ "$i" -eq 300 ]; then echo "clickhouse-server did not answer /ping in 30 s" >&2; exit 1; fi
  sleep 0.1
done

# One query; a server error fails the benchmark (with the server's message).
sql() { curl -sS --fail-with-body "$url/" --data-binary "$1"; }
