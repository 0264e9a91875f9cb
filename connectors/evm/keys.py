"""The local signing account: loaded from an encrypted keystore file or an env var, never shown.

The private key stays inside a `LocalSigner`: its repr and str show only the address, it cannot be
pickled or copied, and every error raised while loading names the source (file, env var) but never
the value. Keystores are the standard Web3 Secret Storage JSON (eth-account `Account.encrypt`); the
passphrase comes from an env var or a prompt callback, never from config.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal, NoReturn

from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress

from core.errors import PerpetuaError

PassphrasePrompt = Callable[[], str | Awaitable[str]]

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class KeyLoadError(PerpetuaError):
    """A key could not be loaded; the message names the source, never the secret."""


class LocalSigner:
    """Signs transactions with a private key held in memory; shows only its `address`."""

    __slots__ = ("__account", "address")

    def __init__(self, account: LocalAccount) -> None:
        self.__account = account
        self.address: ChecksumAddress = account.address

    def __repr__(self) -> str:
        return f"LocalSigner(address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("LocalSigner holds a private key and cannot be pickled or copied")

    def __copy__(self) -> NoReturn:
        raise TypeError("LocalSigner holds a private key and cannot be copied")

    def __deepcopy__(self, memo: dict[int, Any]) -> NoReturn:
        raise TypeError("LocalSigner holds a private key and cannot be copied")

    def sign_transaction(self, tx: Mapping[str, Any]) -> SignedTransaction:
        """Sign a fully filled transaction dict (chainId, nonce, gas, fees, to, value, data)."""
        return self.__account.sign_transaction(dict(tx))

    @classmethod
    def from_hex(cls, secret: str, source: str) -> LocalSigner:
        """From a 32-byte hex key (with or without 0x); `source` names where it came from in errors."""
        text = secret.strip()
        digits = text[2:] if text[:2].lower() == "0x" else text
        if len(digits) != 64 or not set(digits) <= _HEX_DIGITS:
            # the length is safe to show, the characters are not
            raise KeyLoadError(f"{source}: not a 32-byte hex private key ({len(digits)} characters)")
        try:
            account = Account.from_key(bytes.fromhex(digits))
        except Exception:  # eth-keys may echo the key in its message: raise a clean one, unchained
            raise KeyLoadError(f"{source}: not a valid secp256k1 private key") from None
        return cls(account)

    @classmethod
    def from_env(cls, var: str, environ: Mapping[str, str] | None = None) -> LocalSigner:
        """From env var `var` holding the hex private key."""
        env = os.environ if environ is None else environ
        secret = env.get(var)
        if not secret:
            raise KeyLoadError(f"env var {var} is not set or empty (expected a hex private key)")
        return cls.from_hex(secret, f"env var {var}")

    @classmethod
    async def from_keystore(
        cls,
        path: Path | str,
        *,
        passphrase_env: str | None = None,
        prompt: PassphrasePrompt | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> LocalSigner:
        """From the encrypted keystore JSON at `path`; the passphrase from `passphrase_env` or `prompt`.

        The env var wins when both are given and it is set. Decryption (scrypt/pbkdf2, ~1 s at the
        default cost) runs in a worker thread, off the event loop.
        """
        file = Path(path)
        env = os.environ if environ is None else environ
        passphrase: str | None = env.get(passphrase_env) if passphrase_env else None
        if passphrase is None and prompt is not None:
            answer = prompt()
            passphrase = await answer if inspect.isawaitable(answer) else answer
        if passphrase is None:
            source = f"env var {passphrase_env} not set" if passphrase_env else "no passphrase source"
            raise KeyLoadError(f"keystore {file}: no passphrase ({source}, and no prompt)")
        try:
            text = await asyncio.to_thread(file.read_text)
            keyfile = json.loads(text)
        except OSError as error:
            raise KeyLoadError(f"keystore {file}: cannot read ({error.strerror})") from None
        except ValueError:
            raise KeyLoadError(f"keystore {file}: not JSON") from None
        try:
            key = await asyncio.to_thread(Account.decrypt, keyfile, passphrase)
        except ValueError:
            raise KeyLoadError(f"keystore {file}: wrong passphrase or corrupt keystore") from None
        except Exception as error:
            raise KeyLoadError(f"keystore {file}: unusable ({type(error).__name__})") from None
        return cls(Account.from_key(key))


async def write_keystore(
    path: Path | str,
    secret: str | bytes,
    passphrase: str,
    *,
    kdf: Literal["scrypt", "pbkdf2"] = "scrypt",
    iterations: int | None = None,
) -> ChecksumAddress:
    """Encrypt private key `secret` (hex or 32 bytes) with `passphrase` into a keystore file at `path`.

    The file is created with mode 0600. `iterations` lowers the KDF cost (tests); None keeps
    eth-account's default. Returns the account's address.
    """
    key = secret if isinstance(secret, bytes) else bytes.fromhex(secret.removeprefix("0x"))
    keyfile = await asyncio.to_thread(Account.encrypt, key, passphrase, kdf, iterations)
    file = Path(path)

    def write() -> None:
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(keyfile, handle)

    await asyncio.to_thread(write)
    return ChecksumAddress(Account.from_key(key).address)
