"""A loopback HTTP(S) server that records the Authorization header of every request and answers
from a table of routes: the stand-in for the APIs no emulator runs for here (BigQuery, Vertex AI,
Cosmos DB, Azure OpenAI). What matters is what the real SDK client sends it."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple

Route = Callable[[str, str], Tuple[int, dict]]


class RecordingServer:
    def __init__(self, route: Route, tls: Optional[Tuple[str, str]] = None) -> None:
        self.requests: List[Dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.requests.append({"method": self.command, "path": self.path, "authorization": self.headers.get("authorization") or ""})
                status, body = route(self.command, self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls[0], tls[1])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def authorizations(self) -> List[str]:
        return [r["authorization"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
