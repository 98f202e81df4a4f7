"""A small HTTP front over chdb (the ClickHouse 26.9 engine in-process), for tests only.

No ClickHouse 20.x+ *server* can be installed on these machines, but the current engine can:
PyPI's chdb-core. This front speaks the part of ClickHouse's HTTP interface that Ritma's loader
uses, so `ritma load` runs against the real 26.9 engine: the tables, types, codecs, TTLs and
queries are the engine's own; only the HTTP transport is emulated here. Tests say so.

    python3 chdb_http.py DATA_DIR PORT_FILE

Serves on a free loopback port, written to PORT_FILE once listening. Understood: GET /ping;
GET or POST / with `query=` in the URL or the body, `database=`, `default_format=`; an INSERT … FORMAT RowBinary
with its rows in the body, raw or (`decompress=1`) as ClickHouse's LZ4 compressed blocks. Other
URL settings are ignored. Answers are never compressed. Errors are HTTP 500 with the engine's text.
"""

import os
import re
import struct
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import lz4.block
from chdb import session

LOCK = threading.Lock()
SESSION = None
INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\S+?)\s*\(([^)]*)\)\s*FORMAT\s+RowBinary\s*$", re.I | re.S)
FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*$", re.I)


def decompress_blocks(body):
    """ClickHouse's compressed blocks: 16-byte checksum, method, sizes, LZ4 data."""
    out, at = bytearray(), 0
    while at < len(body):
        method = body[at + 16]
        csize, dsize = struct.unpack_from("<II", body, at + 17)
        data = body[at + 25 : at + 16 + csize]
        if method == 0x82:
            out += lz4.block.decompress(data, uncompressed_size=dsize)
        elif method == 0x02:
            out += data
        else:
            raise ValueError(f"unknown compression method {method:#x}")
        at += 16 + csize
    return bytes(out)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        if urlparse(self.path).path == "/ping":
            return self.reply(200, b"Ok.\n")
        self.handle_query(b"")

    def do_POST(self):
        self.handle_query(self.body())

    def handle_query(self, body):
        params = {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()}
        if params.get("decompress") == "1":
            body = decompress_blocks(body)
        sql = params.get("query")
        if sql is None:
            sql, body = body.decode(), b""
        try:
            with LOCK:
                SESSION.query(f"USE {params.get('database', 'default')}", "CSV")
                out = self.run(sql, body, params.get("default_format", "TabSeparated"))
        except Exception as e:  # the engine's error, as a server would send it
            return self.reply(500, str(e).encode())
        self.reply(200, out)

    def run(self, sql, rows, fmt):
        m = INSERT.match(sql)
        if m:
            table, columns = m.group(1), [c.strip() for c in m.group(2).split(",")]
            types = dict(
                line.split("\t")
                for line in str(
                    SESSION.query(
                        f"SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                        f"AND table = '{table.strip('`')}'",
                        "TabSeparated",
                    )
                ).splitlines()
            )
            structure = ", ".join(f"{c.strip('`')} {types[c.strip('`')]}" for c in columns)
            with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
                f.write(rows)
            try:
                SESSION.query(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"SELECT * FROM file('{f.name}', 'RowBinary', '{structure}')",
                    "CSV",
                )
            finally:
                os.unlink(f.name)
            return b""
        m = FORMAT.search(sql)
        if m:
            sql, fmt = sql[: m.start()], m.group(1)
        return SESSION.query(sql, fmt).bytes()


def main():
    global SESSION
    data, port_file = sys.argv[1], sys.argv[2]
    SESSION = session.Session(data)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
