"""A throw-away self-signed TLS certificate for test servers (aiosmtpd here, Postfix in tests/server)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed_cert(directory: Path, common_name: str = "mail.example.test") -> tuple[Path, Path]:
    """(cert, key) PEM files made by the openssl command; the test is skipped without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not available to make a test certificate")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    # An EC key is generated in milliseconds (RSA 2048 can take a second on a busy machine).
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={common_name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    key.chmod(0o600)
    return cert, key
