"""The deployment's certificate authority, with ``cryptography``: CA, broker and client certificates, the CRL.

Keys are ECDSA P-256 (fast to make and to verify; Mosquitto's OpenSSL takes
them), written PKCS#8 PEM in files created mode 0600. Certificates last
``days`` (CA ten years, others two). Serial numbers are random 159-bit
numbers, as RFC 5280 allows, so a revoked one is never reused.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 730


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def write_private(path: Path, data: bytes) -> None:
    """A file only its owner may read, created with that mode (never readable for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Authority:
    """The CA: its certificate and key, loaded from the deployment folder."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, cert_path: Path, key_path: Path, name: str) -> "Authority":
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(_now() - datetime.timedelta(minutes=5))
                .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        write_private(key_path, _key_pem(key))
        cert_path.write_bytes(_cert_pem(cert))
        return cls(cert, key)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> "Authority":
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not the CA's EC key")
        return cls(cert, key)

    def issue(self, common_name: str, cert_path: Path, key_path: Path, *, server_names: list[str] = (),
              days: int = LEAF_DAYS) -> int:
        """A certificate for a client (no ``server_names``) or a server; its serial number."""
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(_now() - datetime.timedelta(minutes=5))
                   .not_valid_after(_now() + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if server_names:
            alt: list[x509.GeneralName] = []
            for name in server_names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    alt.append(x509.DNSName(name))
            builder = (builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                            critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        write_private(key_path, _key_pem(key))
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(_cert_pem(cert))
        return serial

    def write_crl(self, path: Path, revoked_serials: list[int]) -> None:
        """The revocation list Mosquitto's certificate listener checks (re-read on a reload)."""
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(_now() - datetime.timedelta(minutes=5))
                   .next_update(_now() + datetime.timedelta(days=CA_DAYS)))
        for serial in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_now()).build())
        crl = builder.sign(self.key, hashes.SHA256())
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        tmp.replace(path)
