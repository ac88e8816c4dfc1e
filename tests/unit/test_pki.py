"""tools/pki.py: one CA, one certificate per identity, idempotent, keys 0600."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tools import pki


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*.pem")}


def test_every_identity_gets_a_certificate_naming_it_issued_by_the_ca(tmp_path: Path) -> None:
    issued = pki.ensure(tmp_path)
    assert issued == ["ca", *pki.IDENTITIES]
    assert set(pki.IDENTITIES) == {
        "gateway",
        "auth",
        "wallet",
        "mining",
        "mining-worker",
        "quests",
    }
    ca = certificate(tmp_path / "ca" / "ca.pem")
    for name in pki.IDENTITIES:
        files = pki.identity_files(tmp_path, name)
        cert = certificate(files.cert)
        cert.verify_directly_issued_by(ca)
        assert files.ca.read_bytes() == (tmp_path / "ca" / "ca.pem").read_bytes()
        [common] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert common.value == name
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert sans.get_values_for_type(x509.DNSName)[0] == name
        if name in pki.SERVERS:
            assert sans.get_values_for_type(x509.DNSName) == [name, "localhost"]
            assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
            assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        else:
            assert sans.get_values_for_type(x509.DNSName) == [name]
            assert usages == {ExtendedKeyUsageOID.CLIENT_AUTH}
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert dt.timedelta(days=364) < lifetime < dt.timedelta(days=366)


def test_keys_are_private_and_the_ca_key_stays_in_the_ca_folder(tmp_path: Path) -> None:
    pki.ensure(tmp_path)
    keys = sorted(tmp_path.rglob("*key.pem"))
    assert keys
    assert all(mode(key) == 0o600 for key in keys)
    assert [key for key in keys if key.parent.name != "ca" and key.name != "key.pem"] == []
    assert list((tmp_path / "ca").iterdir()) != []
    for name in pki.IDENTITIES:
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "ca.pem",
            "cert.pem",
            "key.pem",
        ]
        assert mode(tmp_path / name) == 0o700


def test_a_second_run_reuses_every_valid_file(tmp_path: Path) -> None:
    pki.ensure(tmp_path)
    before = snapshot(tmp_path)
    assert pki.ensure(tmp_path) == []
    assert snapshot(tmp_path) == before


def test_a_key_made_readable_by_others_is_made_private_again(tmp_path: Path) -> None:
    pki.ensure(tmp_path)
    key = pki.identity_files(tmp_path, "wallet").key
    key.chmod(0o644)
    assert pki.ensure(tmp_path) == []
    assert mode(key) == 0o600


def test_certificates_near_their_end_are_renewed_and_the_ca_kept(tmp_path: Path) -> None:
    pki.ensure(tmp_path)
    ca_before = (tmp_path / "ca" / "ca.pem").read_bytes()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.LEAF_DAYS - 10)
    assert pki.ensure(tmp_path, now=later) == list(pki.IDENTITIES)
    assert (tmp_path / "ca" / "ca.pem").read_bytes() == ca_before


def test_a_new_ca_reissues_every_identity(tmp_path: Path) -> None:
    pki.ensure(tmp_path)
    (tmp_path / "ca" / "ca-key.pem").unlink()
    assert pki.ensure(tmp_path) == ["ca", *pki.IDENTITIES]
    ca = certificate(tmp_path / "ca" / "ca.pem")
    for name in pki.IDENTITIES:
        certificate(pki.identity_files(tmp_path, name).cert).verify_directly_issued_by(ca)
        assert (
            pki.identity_files(tmp_path, name).ca.read_bytes()
            == (tmp_path / "ca" / "ca.pem").read_bytes()
        )


def test_a_broken_or_mismatched_identity_is_issued_again(tmp_path: Path) -> None:
    pki.ensure(tmp_path)
    wallet, quests = pki.identity_files(tmp_path, "wallet"), pki.identity_files(tmp_path, "quests")
    wallet.key.write_bytes(quests.key.read_bytes())  # another identity's key
    quests.cert.write_text("not a certificate")
    assert pki.ensure(tmp_path) == ["wallet", "quests"]


def test_only_the_names_asked_for_are_issued(tmp_path: Path) -> None:
    assert pki.ensure(tmp_path, ["wallet", "bench-client"]) == ["ca", "wallet", "bench-client"]
    sans = (
        certificate(pki.identity_files(tmp_path, "bench-client").cert)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert sans.get_values_for_type(x509.DNSName) == ["bench-client"]
    assert not (tmp_path / "gateway").exists()


@pytest.mark.parametrize("name", ["", "ca", "../etc", "a b", "wallet/x"])
def test_names_that_are_not_plain_identities_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="identity"):
        pki.ensure(tmp_path, [name])


def test_the_command_line_says_what_it_issued_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pki.main(["--dir", str(tmp_path), "--names", "gateway", "wallet"]) == 0
    assert capsys.readouterr().out == (
        f"pki: {tmp_path}: issued ca, gateway, wallet; kept nothing\n"
    )
    assert pki.main(["--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        f"pki: {tmp_path}: issued auth, mining, quests, mining-worker; kept gateway, wallet\n"
    )
    assert pki.main(["--dir", str(tmp_path), "--names", "no way"]) == 2
    assert "letters, digits and '-' only" in capsys.readouterr().err
