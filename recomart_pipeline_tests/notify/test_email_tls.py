"""Email over STARTTLS and over SSL, with login, against a real local SMTP server with TLS."""

from __future__ import annotations

import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from recomart_pipeline.config.schema import EmailSettings
from recomart_pipeline.notify.channels import send_email
from recomart_pipeline.notify.message import RunNotice
from recomart_pipeline_tests.notify.conftest import _Inbox, free_port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _server(certificate, mode: str):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = _Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"tls-pw"
        return AuthResult(success=ok)

    port = free_port()
    # Implicit SSL: the whole session is TLS, which aiosmtpd cannot see, so allow AUTH there.
    kwargs = (
        {"tls_context": context, "require_starttls": True}
        if mode == "starttls"
        else {"ssl_context": context, "auth_require_tls": False}
    )
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=authenticate, **kwargs
    )
    controller.start()
    return controller, port, inbox


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_email_over_tls_with_login(certificate, mode):
    controller, port, inbox = _server(certificate, mode)
    try:
        settings = EmailSettings(
            enabled=True,
            smtp_server="127.0.0.1",
            smtp_port=port,
            security=mode,
            ca_file=str(certificate[0]),
            username="bot",
            password="tls-pw",
            recipients=["ops@example.com"],
        )
        notice = RunNotice("shop", "prod", "0123456789abcdef", "FAILURE", "http://ui/runs/0123")
        send_email(settings, notice)
    finally:
        controller.stop()
    assert [m["Subject"] for m in inbox.messages] == ["[shop/prod] run 01234567 FAILED"]


def test_untrusted_certificate_is_refused(certificate):
    controller, port, inbox = _server(certificate, "starttls")
    try:
        settings = EmailSettings(
            enabled=True,
            smtp_server="127.0.0.1",
            smtp_port=port,
            security="starttls",
            recipients=["ops@example.com"],
        )
        with pytest.raises(ssl.SSLError):
            send_email(settings, RunNotice("shop", "prod", "r", "FAILURE", "u"))
    finally:
        controller.stop()
    assert inbox.messages == []
