"""Keys: an encrypted keystore or an env var gives the same account eth-account derives; the secret
never shows in a repr, an error or a log line, through a whole send flow on a real anvil."""

from __future__ import annotations

import copy
import logging
import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import AsyncWeb3
from web3.types import RPCEndpoint

from connectors.evm.chain import ChainSession, FeePolicy
from connectors.evm.chainlink import load_contract_artifact
from connectors.evm.erc20 import StockToken
from connectors.evm.keys import KeyLoadError, LocalSigner, write_keystore

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSPHRASE = "correct horse battery staple"
FAST_KDF: dict[str, Any] = {"kdf": "scrypt", "iterations": 2**10}  # cheap scrypt for tests


def secret_forms(key: str) -> list[str]:
    """Every way the hex key could be printed: with and without 0x, lower and upper case."""
    digits = key.removeprefix("0x")
    return [digits.lower(), digits.upper(), "0x" + digits.lower()]


def assert_no_secret(key: str, texts: list[str]) -> None:
    """No text holds the key in any of its forms (nor its first half, a truncated print)."""
    digits = key.removeprefix("0x")
    forms = [*secret_forms(key), digits[:32].lower(), digits[32:].lower()]
    for text in texts:
        for form in forms:
            assert form not in text and form not in text.lower(), "secret leaked"


async def test_env_key_is_the_account_eth_account_derives() -> None:
    key = Account.create().key.to_0x_hex()
    for value in (key, key.removeprefix("0x"), key.upper().replace("0X", "0x"), f"  {key}\n"):
        signer = LocalSigner.from_env("PERPETUA_TEST_KEY", {"PERPETUA_TEST_KEY": value})
        assert signer.address == Account.from_key(key).address


async def test_bad_env_values_name_the_variable_not_the_value() -> None:
    key = Account.create().key.to_0x_hex()
    near = key[:-1] + "g"  # one character off: not hex
    with pytest.raises(KeyLoadError, match="env var K: not a 32-byte hex private key") as not_hex:
        LocalSigner.from_env("K", {"K": near})
    with pytest.raises(KeyLoadError, match="env var K: not a valid secp256k1 private key") as zero:
        LocalSigner.from_env("K", {"K": "0x" + "00" * 32})
    above_order = "0x" + "ff" * 32  # above the curve order
    with pytest.raises(KeyLoadError, match="not a valid secp256k1") as too_big:
        LocalSigner.from_env("K", {"K": above_order})
    with pytest.raises(KeyLoadError, match="env var K is not set"):
        LocalSigner.from_env("K", {})
    assert_no_secret(key, [str(not_hex.value), repr(not_hex.value)])
    assert near[2:40] not in str(not_hex.value)
    assert "ff" * 8 not in str(too_big.value) and "00" * 8 not in str(zero.value)
    assert too_big.value.__cause__ is None and too_big.value.__suppress_context__


async def test_keystore_with_env_passphrase_and_prompts(tmp_path: Path) -> None:
    key = Account.create().key.to_0x_hex()
    path = tmp_path / "keystore.json"
    address = await write_keystore(path, key, PASSPHRASE, **FAST_KDF)
    assert address == Account.from_key(key).address
    assert path.stat().st_mode & 0o777 == 0o600
    assert_no_secret(key, [path.read_text()])
    from_env = await LocalSigner.from_keystore(path, passphrase_env="PASS", environ={"PASS": PASSPHRASE})
    from_prompt = await LocalSigner.from_keystore(path, prompt=lambda: PASSPHRASE, environ={})

    async def ask() -> str:
        return PASSPHRASE

    from_async_prompt = await LocalSigner.from_keystore(path, passphrase_env="PASS", prompt=ask, environ={})
    assert from_env.address == from_prompt.address == from_async_prompt.address == address
    with pytest.raises(KeyLoadError, match="wrong passphrase"):
        await LocalSigner.from_keystore(path, passphrase_env="PASS", environ={"PASS": "wrong"})
    with pytest.raises(KeyLoadError, match="env var PASS not set"):
        await LocalSigner.from_keystore(path, passphrase_env="PASS", environ={})
    with pytest.raises(KeyLoadError, match="cannot read"):
        await LocalSigner.from_keystore(tmp_path / "missing.json", prompt=lambda: PASSPHRASE)


async def test_signer_shows_only_its_address() -> None:
    key = Account.create().key.to_0x_hex()
    signer = LocalSigner.from_hex(key, "k")
    assert repr(signer) == str(signer) == f"LocalSigner(address={signer.address})"
    assert not hasattr(signer, "__dict__")
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot be"):
            attempt(signer)


async def test_secret_appears_nowhere_in_a_full_send_flow(
    tmp_path: Path, clean_chain: AsyncWeb3[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, web3's and aiohttp's included
    key = Account.create().key.to_0x_hex()
    path = tmp_path / "issuer.json"
    await write_keystore(path, key, PASSPHRASE, **FAST_KDF)
    signer = await LocalSigner.from_keystore(path, passphrase_env="PASS", environ={"PASS": PASSPHRASE})
    funding = [signer.address, hex(10**19)]
    await clean_chain.provider.make_request(RPCEndpoint("anvil_setBalance"), funding)
    session = ChainSession(clean_chain, signer, 31337, FeePolicy(Decimal(100)), poll_interval_s=0.02)
    await session.start()
    texts: list[str] = [repr(signer), str(signer), repr(session), repr(vars(session))]

    artifact = load_contract_artifact("StockToken")
    factory = clean_chain.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    created = await session.send({"data": factory.constructor("Apple", "AAPLx").data_in_transaction})
    token = StockToken(clean_chain, created["contractAddress"], session=session)
    receipts = [
        created,
        await token.mint(signer.address, 10**18),
        await token.transfer("0x" + "45" * 20, 10**17),
    ]
    receipts.append(await token.approve("0x" + "46" * 20, 5))  # type: ignore[arg-type]
    texts += [repr(receipt) for receipt in receipts] + [repr(session.nonces.inflight), repr(token)]

    capped = ChainSession(clean_chain, signer, 31337, FeePolicy(Decimal("0.000000001")))  # 1 wei cap
    await capped.start()
    errors: list[BaseException] = []
    for failing in (
        token.burn(signer.address, 10**30),  # InsufficientBalance(), pre-flight
        session.send(
            {
                "to": token.address,
                "data": token.contract.encode_abi("burn", args=[signer.address, 10**30]),
                "gas": 90_000,
            },
            abi=token.abi,
        ),
        ChainSession(clean_chain, signer, 5, FeePolicy(Decimal(1))).start(),  # chain id mismatch
        capped.send({"to": signer.address}),
        LocalSigner.from_keystore(path, passphrase_env="PASS", environ={"PASS": "nope"}),
    ):
        with pytest.raises(Exception) as caught:
            await failing
        errors.append(caught.value)
    with pytest.raises(KeyLoadError) as bad_env:
        LocalSigner.from_env("K", {"K": key[:-2]})
    errors.append(bad_env.value)
    assert [type(error).__name__ for error in errors] == [
        "TransactionReverted",
        "TransactionReverted",
        "ChainIdMismatch",
        "FeeCapExceeded",
        "KeyLoadError",
        "KeyLoadError",
    ]
    texts += [f"{error!s} {error!r} {error.args!r}" for error in errors]
    texts.append(caplog.text)
    # the errors do say what went wrong
    assert "InsufficientBalance()" in str(errors[0]) and "InsufficientBalance()" in str(errors[1])
    assert "sent 0x" in caplog.text  # and the logs did capture the flow
    assert_no_secret(key, texts)
