"""HTTP client failures: requests, httpx, urllib and the socket errors under them.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_STRERROR = "C library strerror() text, as in Python's OSError str() '[Errno N] text' and coreutils"

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        id="requests.http_5xx", category="http", subcategory="server_error",
        pattern=r"(?P<status>5\d\d) Server Error: (?P<reason>.*?) for url: (?P<url>\S+)",
        literals=(" Server Error: ",),
        description="An HTTP server answered with a 5xx status (requests Response.raise_for_status).",
        hint="The service is failing or overloaded; retry with backoff and check its status page.",
        source="requests requests/models.py Response.raise_for_status (requests >= 2.0)",
        samples=("requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: https://huggingface.co/api/models/gpt2",),
    ),
    Signature(
        id="requests.http_4xx", category="http", subcategory="client_error",
        pattern=r"(?P<status>4\d\d) Client Error: (?P<reason>.*?) for url: (?P<url>\S+)",
        literals=(" Client Error: ",),
        description="An HTTP server rejected the request with a 4xx status (requests Response.raise_for_status).",
        hint="401/403: check credentials and tokens; 404: check the URL; 429: slow down.",
        source="requests requests/models.py Response.raise_for_status (requests >= 2.0)",
        samples=("requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://huggingface.co/api/models/private/model",),
    ),
    Signature(
        id="hf_hub.http_4xx", category="http", subcategory="client_error",
        pattern=r"(?P<status>4\d\d) Client Error\. \(Request ID: ",
        literals=("Client Error. (Request ID: ",),
        description="The Hugging Face Hub rejected a request with a 4xx status (huggingface_hub hf_raise_for_status).",
        hint="401/403: check HF_TOKEN and access to the repo; 404: check the repo id and revision; 429: slow down.",
        source="huggingface_hub utils/_http.py hf_raise_for_status (huggingface_hub >= 0.14); seen in Jiaxuan-Li/EVCap#10",
        samples=("huggingface_hub.utils._errors.RepositoryNotFoundError: 404 Client Error. (Request ID: Root=1-64f34d30-2a1f6e8b3c7d9e0f12345678)",),
    ),
    Signature(
        id="hf_hub.http_5xx", category="http", subcategory="server_error",
        pattern=r"(?P<status>5\d\d) Server Error\. \(Request ID: ",
        literals=("Server Error. (Request ID: ",),
        description="The Hugging Face Hub answered with a 5xx status (huggingface_hub hf_raise_for_status).",
        hint="The Hub is failing or overloaded; retry with backoff and check status.huggingface.co.",
        source="huggingface_hub utils/_http.py hf_raise_for_status (huggingface_hub >= 0.14)",
        samples=("huggingface_hub.utils._errors.HfHubHTTPError: 503 Server Error. (Request ID: Root=1-65a1b2c3-0123456789abcdef01234567)",),
    ),
    Signature(
        id="httpx.http_5xx", category="http", subcategory="server_error",
        pattern=r"Server error '(?P<status>5\d\d) (?P<reason>[^']*)' for url '(?P<url>[^']+)'",
        literals=("Server error '",),
        description="An HTTP server answered with a 5xx status (httpx Response.raise_for_status).",
        hint="The service is failing or overloaded; retry with backoff and check its status page.",
        source="httpx httpx/_models.py Response.raise_for_status (httpx >= 0.18)",
        samples=("httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'https://api.example.com/v1/items'",),
    ),
    Signature(
        id="httpx.http_4xx", category="http", subcategory="client_error",
        pattern=r"Client error '(?P<status>4\d\d) (?P<reason>[^']*)' for url '(?P<url>[^']+)'",
        literals=("Client error '",),
        description="An HTTP server rejected the request with a 4xx status (httpx Response.raise_for_status).",
        hint="401/403: check credentials and tokens; 404: check the URL; 429: slow down.",
        source="httpx httpx/_models.py Response.raise_for_status (httpx >= 0.18)",
        samples=("httpx.HTTPStatusError: Client error '404 Not Found' for url 'https://api.example.com/v1/items/42'",),
    ),
    Signature(
        id="urllib.http_5xx", category="http", subcategory="server_error",
        pattern=r"HTTP Error (?P<status>5\d\d): (?P<reason>.*)",
        literals=("HTTP Error 5",),
        description="An HTTP server answered with a 5xx status (urllib.request).",
        hint="The service is failing or overloaded; retry with backoff and check its status page.",
        source="CPython Lib/urllib/error.py HTTPError.__str__",
        samples=("urllib.error.HTTPError: HTTP Error 503: Service Unavailable",),
    ),
    Signature(
        id="urllib.http_4xx", category="http", subcategory="client_error",
        pattern=r"HTTP Error (?P<status>4\d\d): (?P<reason>.*)",
        literals=("HTTP Error 4",),
        description="An HTTP server rejected the request with a 4xx status (urllib.request).",
        hint="401/403: check credentials and tokens; 404: check the URL; 429: slow down.",
        source="CPython Lib/urllib/error.py HTTPError.__str__",
        samples=("urllib.error.HTTPError: HTTP Error 404: Not Found",),
    ),
    Signature(
        id="requests.read_timeout", category="http", subcategory="timeout",
        pattern=r"Read timed out\.?(?: \(read timeout=(?P<timeout>[\d.]+)\))?",
        literals=("Read timed out",),
        description="An HTTP response did not arrive within the read timeout (urllib3 ReadTimeoutError).",
        hint="The server is slow or unreachable; raise the timeout or retry with backoff.",
        source="urllib3 urllib3/connectionpool.py _raise_timeout, surfaced by requests as ReadTimeout",
        samples=("requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='huggingface.co', port=443): Read timed out. (read timeout=10)",),
    ),
    Signature(
        id="httpx.timeout", category="http", subcategory="timeout",
        pattern=r"\b(?:httpx|httpcore)\.(?P<kind>(?:Read|Connect|Write|Pool)Timeout)\b",
        literals=("ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout"),
        description="An httpx request exceeded one of its timeouts.",
        hint="The server is slow or unreachable; raise httpx.Timeout or retry with backoff.",
        source="httpx httpx/_exceptions.py TimeoutException subclasses (httpx >= 0.18)",
        samples=(
            "httpx.ReadTimeout: The read operation timed out",
            "httpx.ConnectTimeout: timed out",
        ),
    ),
    Signature(
        id="python.socket_timeout", category="http", subcategory="timeout",
        pattern=r"(?:TimeoutError|socket\.timeout): (?:timed out|The (?:read|write|handshake) operation timed out)",
        literals=("TimeoutError: ", "socket.timeout: "),
        description="A socket operation timed out (socket.timeout is TimeoutError since Python 3.10).",
        hint="The peer is slow or unreachable; raise the timeout or retry with backoff.",
        source="CPython Modules/socketmodule.c and Lib/ssl.py timeout messages",
        samples=(
            "TimeoutError: timed out",
            "socket.timeout: timed out",
            "TimeoutError: The read operation timed out",
        ),
    ),
    Signature(
        id="requests.max_retries", category="http", subcategory="connection",
        pattern=r"Max retries exceeded with url: (?P<url>\S+)",
        literals=("Max retries exceeded with url",),
        description="urllib3 gave up connecting after its retries; the 'Caused by' part names why.",
        hint="Check the host name, DNS, proxy settings and that the service is up.",
        source="urllib3 urllib3/exceptions.py MaxRetryError, surfaced by requests as ConnectionError",
        samples=("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded with url: /v1/items (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f2b1c3d4e50>: Failed to establish a new connection: [Errno 111] Connection refused'))",),
    ),
    Signature(
        id="python.connection_refused", category="http", subcategory="connection",
        pattern=r"(?:\[Errno (?P<errno>\d+)\] )?Connection refused",
        literals=("Connection refused",),
        description="Nothing listens on the address the worker connected to (ECONNREFUSED).",
        hint="Check that the service is up and the host and port are right.",
        source=_STRERROR,
        samples=("ConnectionRefusedError: [Errno 111] Connection refused",),
    ),
    Signature(
        id="python.connection_reset", category="http", subcategory="connection",
        # gloo ("Read error [host]:port: Connection reset by peer") and torch's store client print
        # the same strerror; those lines are comm failures (signatures/comm.py), never HTTP.
        pattern=r"^(?!.*(?:Read error \[|Write error \[|SocketImpl\(|DistNetworkError)).*?(?:\[Errno (?P<errno>\d+)\] )?Connection reset by peer",
        literals=("Connection reset by peer",),
        description="The remote end reset an open connection (ECONNRESET): it crashed, restarted or a proxy cut it.",
        hint="Retry with backoff; if it persists, check the server's and any proxy's logs.",
        source=_STRERROR,
        samples=("ConnectionResetError: [Errno 104] Connection reset by peer",),
    ),
)
# fmt: on
