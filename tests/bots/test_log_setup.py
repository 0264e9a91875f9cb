"""Structured logs: one JSON object per line, and a secret passed in every way appears nowhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import quote

import pytest

from bots.log_setup import MASK, JsonFormatter, Redactor, configure_logging, is_secret_key, redactor

SECRET = "sk_live_9f8e7d6c5b4a/+="  # has characters URL encoding changes
OTHER = "0x" + "ab" * 32  # a private key


class Holder:
    """An object whose text carries a secret (a client object with its key in its repr)."""

    def __repr__(self) -> str:
        return f"Holder(key={SECRET})"

    __str__ = __repr__


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(json_logs=True, level=logging.DEBUG, stream=stream)
    redactor().add(SECRET)
    redactor().add(OTHER)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)


def test_a_secret_passed_every_way_appears_nowhere(out: io.StringIO) -> None:
    log = logging.getLogger("perpetua.test")
    log.info(f"message with {SECRET} inline")
    log.info("as an argument %s and %r", SECRET, {"nested": [SECRET]})
    log.warning("url-encoded %s", quote(SECRET, safe=""))
    log.info("extra fields", extra={"api_key": SECRET, "note": f"x{SECRET}y", "deep": {"a": [1, (SECRET,)]}})
    log.info("an object %s", Holder(), extra={"client": Holder(), "wallet": {"privateKey": OTHER}})
    try:
        raise RuntimeError(f"venue said: bad key {SECRET} / {OTHER}")
    except RuntimeError:
        log.exception("request failed")
    log.info("stack", stack_info=True, extra={"stack_note": SECRET})
    # Never registered, but keyed like a secret in the text:
    log.info('headers {"X-MBX-APIKEY": "unregistered1", "Authorization": "Bearer unregistered2"}')
    log.info("query api_secret=unregistered3&symbol=TSLAx signature=unregistered4")
    logging.getLogger("aiohttp.client").error("third-party logger leaks %s", SECRET)
    text = out.getvalue()
    for leaked in (SECRET, quote(SECRET, safe=""), OTHER, "ab" * 32, "unregistered"):
        assert leaked not in text, leaked
    # Only this test's loggers: earlier tests' leftovers (asyncio's notes on finished tasks) may log too.
    lines = [json.loads(line) for line in text.splitlines()]
    lines = [line for line in lines if line["logger"] in ("perpetua.test", "aiohttp.client")]
    assert len(lines) == 10
    assert lines[0]["message"] == f"message with {MASK} inline"
    assert lines[1]["message"] == f"as an argument {MASK} and {{'nested': ['{MASK}']}}"
    assert lines[3]["api_key"] == MASK
    assert lines[3]["note"] == f"x{MASK}y"
    assert lines[3]["deep"] == {"a": [1, [MASK]]}
    assert lines[4]["client"] == f"Holder(key={MASK})"
    assert lines[4]["wallet"] == {"privateKey": MASK}
    assert lines[5]["level"] == "ERROR"
    assert "RuntimeError: venue said: bad key [REDACTED] / [REDACTED]" in lines[5]["exc"]
    assert "test_a_secret_passed_every_way_appears_nowhere" in lines[6]["stack"]
    assert lines[7]["message"] == f'headers {{"X-MBX-APIKEY": "{MASK}", "Authorization": "{MASK}"}}'
    assert lines[8]["message"] == f"query api_secret={MASK}&symbol=TSLAx signature={MASK}"
    assert lines[9]["logger"] == "aiohttp.client"


def test_json_line_shape_and_extra_types(out: io.StringIO) -> None:
    record_logger = logging.getLogger("perpetua.engine")
    record_logger.warning(
        "refused %s: %s", "o1", "max_notional", extra={"client_order_id": "o1", "qty": Decimal("1.50")}
    )
    (line,) = out.getvalue().splitlines()
    obj = json.loads(line)
    assert list(obj) == ["ts", "level", "logger", "message", "client_order_id", "qty"]
    assert obj["level"] == "WARNING" and obj["logger"] == "perpetua.engine"
    assert obj["message"] == "refused o1: max_notional"
    assert obj["qty"] == "1.50"  # Decimal kept exact, as text
    assert obj["ts"].endswith("+00:00") and len(obj["ts"]) == len("2026-01-01T12:00:00.000000+00:00")


def test_ordinary_trading_text_is_left_alone() -> None:
    r = Redactor(["abcdef"])
    text = "SwapRequest(token_in='USDC', token_out='TSLAx') tx 0x" + "12" * 32 + " api_key_env=BINANCE_KEY"
    assert r.text(text) == text
    assert not is_secret_key("token") and not is_secret_key("token_in") and not is_secret_key("api_key_env")
    assert is_secret_key("apiKey") and is_secret_key("client-secret") and is_secret_key("PRIVATE_KEY")


def test_a_too_short_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as caught:
        Redactor(["ab1"])
    assert "ab1" not in str(caught.value)
    assert "at least 4 characters" in str(caught.value)


def test_configuring_twice_keeps_one_handler_and_text_mode_redacts() -> None:
    stream = io.StringIO()
    configure_logging(json_logs=True, stream=io.StringIO())
    handler = configure_logging(json_logs=False, stream=stream)
    try:
        assert [h.get_name() for h in logging.getLogger().handlers].count("perpetua") == 1
        assert not isinstance(handler.formatter, JsonFormatter)
        redactor().add(SECRET)
        logging.getLogger("perpetua.x").warning("key %s", SECRET)
        assert stream.getvalue().rstrip().endswith(f"WARNING perpetua.x: key {MASK}")
    finally:
        logging.getLogger().removeHandler(handler)


def test_the_cli_json_logs_option_installs_json_lines() -> None:
    from typer.testing import CliRunner

    from bots.cli import app

    try:
        result = CliRunner().invoke(app, ["--json-logs", "check-config", "config.yaml"])
        assert result.exit_code == 0, result.output
        (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "perpetua"]
        assert isinstance(handler.formatter, JsonFormatter)
        assert logging.getLogger().level == logging.INFO
        CliRunner().invoke(app, ["check-config", "config.yaml"])
        (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "perpetua"]
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        for h in [h for h in logging.getLogger().handlers if h.get_name() == "perpetua"]:
            logging.getLogger().removeHandler(h)
        logging.getLogger().setLevel(logging.WARNING)
