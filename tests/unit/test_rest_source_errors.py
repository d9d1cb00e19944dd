"""The REST model source when the tracking server is not there: a clear error naming it, no hang."""

from __future__ import annotations

import pytest

from pipelines.traffic import free_port
from services.serving.model_store import ModelUnavailable, RegistryError, RestModelSource, load_version


def test_a_missing_tracking_server_is_named_in_the_error():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    source = RestModelSource(tracking_uri=url, timeout_s=2)

    with pytest.raises(RegistryError, match=f"tracking server {url} did not answer GET"):
        source.alias_version("bike-demand", "champion")
    with pytest.raises(ModelUnavailable, match=r"v3 failed to load: RegistryError: tracking server"):
        load_version(source, "bike-demand", "3")
    with pytest.raises(RegistryError, match="did not answer POST"):
        source.set_alias("bike-demand", "champion", "3")


def test_a_failing_tracking_server_is_an_error_with_its_answer():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Failing(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"error_code": "INTERNAL_ERROR", "message": "database is locked"}'
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = RestModelSource(tracking_uri=f"http://127.0.0.1:{server.server_port}", timeout_s=5)
        with pytest.raises(RegistryError, match=r"answered 500 .*database is locked"):
            source.alias_version("bike-demand", "champion")
    finally:
        server.shutdown()
        server.server_close()
