"""TLS material and the kubeconfig, generated into the data directory on first start.

Where it sits: ``ApiServer.start`` calls :func:`ensure_pki` before listening (HTTPS is
the default) and :func:`write_kubeconfig` once the port is known; ``HttpClient`` and
kubectl read the CA from what is written here.

Files in ``--data-dir`` (private keys 0600):

* ``ca.crt`` / ``ca.key`` — a self-signed CA (EC P-256, 10 years), made once;
* ``apiserver.crt`` / ``apiserver.key`` — the serving certificate signed by that CA,
  with SANs ``localhost``, ``127.0.0.1``, ``::1`` and any configured names; re-issued
  when a name is missing or it is within 30 days of expiry;
* ``admin.kubeconfig`` — cluster (server URL + CA data), user (the admin token),
  context, current-context: ``kubectl --kubeconfig <data-dir>/admin.kubeconfig get pods``.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

import attrs
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
KUBECONFIG = "admin.kubeconfig"


@attrs.frozen
class Pki:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    # Certificates need wall time, not the API server's injected clock: TLS peers check
    # validity against their own real clocks.
    return dt.datetime.now(dt.UTC)


def _make_ca(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kstate-ca")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(pki.ca_key, _key_pem(key))
    _write_public(pki.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def _sans(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _serving_ok(pki: Pki, names: list[str]) -> bool:
    if not pki.cert.exists() or not pki.key.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(pki.cert.read_bytes())
        ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName))
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    fresh = cert.not_valid_after_utc - _now() > dt.timedelta(days=30)
    return wanted <= have and fresh and cert.issuer == ca.subject


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def ensure_pki(data_dir: Path, names: Iterable[str] = ()) -> Pki:
    """The CA and serving certificate in ``data_dir``, created or renewed as needed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pki = Pki(data_dir / "ca.crt", data_dir / "ca.key", data_dir / "apiserver.crt",
              data_dir / "apiserver.key")
    if not pki.ca_cert.exists() or not pki.ca_key.exists():
        _make_ca(pki)
    all_names = list(dict.fromkeys([*DEFAULT_NAMES, *names]))
    if _serving_ok(pki, all_names):
        return pki
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kstate-apiserver")]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(_sans(all_names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(pki.key, _key_pem(key))
    _write_public(pki.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pki


def write_kubeconfig(path: Path, server: str, token: str, ca_cert: Path | None,
                     *, namespace: str = "default") -> Path:
    """A kubeconfig for ``server`` with ``token`` (and the CA, for HTTPS)."""
    cluster: dict[str, str] = {"server": server}
    if ca_cert is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kstate", "cluster": cluster}],
        "users": [{"name": "kstate-admin", "user": {"token": token}}],
        "contexts": [{"name": "kstate", "context": {"cluster": "kstate",
                                                    "user": "kstate-admin",
                                                    "namespace": namespace}}],
        "current-context": "kstate",
        "preferences": {},
    }
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path


__all__ = ["DEFAULT_NAMES", "KUBECONFIG", "Pki", "ensure_pki", "write_kubeconfig"]
