import pytest
from cryptography.fernet import Fernet

from refstage.adapters.crypto import CredentialsUnreadable, Vault
from refstage.config import ConfigError, load_settings, normalise_database_url


def test_production_refuses_to_start_without_secrets(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY and REFSTAGE_ENCRYPTION_KEYS"):
        load_settings({"REFSTAGE_ENV": "production", "REFSTAGE_INSTANCE_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings({"REFSTAGE_ENV": "production", "SECRET_KEY": "short", "REFSTAGE_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    with pytest.raises(ConfigError, match="not a Fernet key"):
        load_settings({"REFSTAGE_ENV": "production", "SECRET_KEY": "x" * 40, "REFSTAGE_ENCRYPTION_KEYS": "nope"})
    ok = load_settings({"REFSTAGE_ENV": "production", "SECRET_KEY": "x" * 40, "REFSTAGE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                        "DATABASE_URL": "postgres://u@h/db"})
    assert ok.is_production and not ok.generated_secrets
    assert ok.database_url == "postgresql+psycopg://u@h/db"


def test_development_generates_and_keeps_local_secrets(tmp_path):
    first = load_settings({"REFSTAGE_INSTANCE_DIR": str(tmp_path)})
    second = load_settings({"REFSTAGE_INSTANCE_DIR": str(tmp_path)})
    assert first.generated_secrets and first.secret_key == second.secret_key
    assert first.encryption_keys == second.encryption_keys
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert first.database_url.startswith("sqlite:///")


def test_normalise_database_url():
    assert normalise_database_url("postgresql://a/b") == "postgresql+psycopg://a/b"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_vault_encrypts_and_rotates():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = Vault([old]).seal({"access_token": "secret-token"})
    assert "secret-token" not in sealed
    rotating = Vault([new, old])
    assert rotating.open(sealed) == {"access_token": "secret-token"}
    rotated = rotating.rotate(sealed)
    assert Vault([new]).open(rotated) == {"access_token": "secret-token"}
    with pytest.raises(CredentialsUnreadable):
        Vault([new]).open(sealed)
    with pytest.raises(CredentialsUnreadable):
        Vault([Fernet.generate_key().decode()]).open(rotated)
