"""Real parts for the keyless tests: a self-signed TLS certificate for 127.0.0.1, and a
loopback HTTP server that acts as the App Service managed identity endpoint.

azure-identity's `ManagedIdentityCredential` reads `IDENTITY_ENDPOINT` and
`IDENTITY_HEADER` and asks `GET <endpoint>?api-version=2019-08-01&resource=...&client_id=...`
with the header `X-IDENTITY-HEADER`, as on App Service and Azure Functions. This server
answers like the platform does, with JWTs that Azurite's `--oauth basic` accepts: it
checks the issuer (an Entra `sts.windows.net` prefix), the audience (the storage
resource) and `iat`/`nbf`/`exp`, not the signature; the user delegation key comes from
the token's `oid` and `tid`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from devhost import azurite as azurite_mod

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "6f1c2a3b-0d4e-4f5a-9b8c-7d6e5f4a3b2c"  # the app's user-assigned identity


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def mint_jwt(audience: str, client_id: str, lifetime: int, *, issued: float | None = None) -> str:
    """An Entra-shaped access token (unsigned: Azurite's basic OAuth checks no signature)."""
    now = int(issued if issued is not None else time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{TENANT_ID}/",
        "iat": now,
        "nbf": now - 60,
        "exp": now + lifetime,
        "appid": client_id,
        "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
        "sub": client_id,
        "tid": TENANT_ID,
        "ver": "1.0",
    }
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.{_b64({'sig': 0})}"


@dataclass
class IdentityEndpoint:
    """The managed identity endpoint of one app with user-assigned identities."""

    client_ids: set[str]
    lifetime: int = 3600
    audience: str | None = None  # None: the requested resource (as Entra does)
    header: str = field(default_factory=lambda: secrets.token_hex(16))
    requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"

    def env(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header}

    def start(self) -> IdentityEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                status, body = endpoint.answer(query, self.headers.get("X-IDENTITY-HEADER"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def answer(self, query: dict[str, str], header: str | None) -> tuple[int, dict]:
        if header != self.header:
            return 401, {"statusCode": 401, "message": "X-IDENTITY-HEADER missing or wrong"}
        if query.get("api-version") != "2019-08-01" or "resource" not in query:
            return 400, {"statusCode": 400, "message": "api-version and resource are required"}
        client_id = query.get("client_id", "")
        if client_id not in self.client_ids:
            return 400, {"statusCode": 400, "message": f"no identity with client id {client_id}"}
        self.requests.append(query)
        token = mint_jwt(self.audience or query["resource"], client_id, self.lifetime)
        self.issued.append(token)
        return 200, {
            "access_token": token,
            "expires_on": str(int(time.time()) + self.lifetime),
            "resource": query["resource"],
            "token_type": "Bearer",
            "client_id": client_id,
        }

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def keyless_env(
    azurite: azurite_mod.Azurite, endpoint: IdentityEndpoint, cert: Path
) -> dict[str, str]:
    """What an Azure deployment with shared-key access off sets (plus the test CA)."""
    return {
        "AzureWebJobsStorage__blobServiceUri": azurite.blob_uri,
        "AzureWebJobsStorage__queueServiceUri": azurite.queue_uri,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "REQUESTS_CA_BUNDLE": str(cert),
        **endpoint.env(),
    }


def clear_service_caches() -> None:
    """Forget every service a module of `shared` built and cached (and the settings)."""
    for name, module in list(sys.modules.items()):
        if name == "shared" or name.startswith("shared."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


class AppServices(SimpleNamespace):
    """The app's services as the routes reach them, for tests that call them directly."""


def app_services() -> AppServices:
    from shared.db.app import database
    from shared.registry.service import model_registry
    from shared.settings import get_settings
    from shared.storage.clients import (
        blob_service,
        container,
        queue_service,
        storage_account,
    )

    return AppServices(
        database=database,
        storage_account=storage_account,
        blob_service=blob_service,
        queue_service=queue_service,
        model_store=lambda: container(get_settings().models_container),
        model_registry=model_registry,
    )
