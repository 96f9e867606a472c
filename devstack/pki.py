"""A throw-away certificate authority for tests and the demo: CA, server and client certificates via openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(cert))
    return cert, key


def make_cert(folder: Path, name: str, ca: tuple[Path, Path], ip: str | None = None) -> tuple[Path, Path]:
    """A certificate signed by ``ca``: for a server at ``ip``, or a client when ``ip`` is None; (certificate, key)."""
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
    extensions = folder / f"{name}.ext"
    extensions.write_text(f"subjectAltName=IP:{ip}\n" if ip else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
            "-days", "2", "-extfile", str(extensions), "-out", str(cert))
    return cert, key


def make_pki(folder: Path, client: str) -> dict[str, tuple[Path, Path]]:
    """A CA (``ca``), a broker certificate for 127.0.0.1 (``server``), a client certificate named ``client``
    (``client``), and an unrelated CA (``other_ca``): each as (certificate, key)."""
    ca = make_ca(folder, "city-ca")
    return {"ca": ca, "server": make_cert(folder, "broker", ca, ip="127.0.0.1"),
            "client": make_cert(folder, client, ca), "other_ca": make_ca(folder, "other-ca")}
