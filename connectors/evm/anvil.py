"""Start and stop a local anvil node (npm `@foundry-rs/anvil`) on a free 127.0.0.1 port.

Used by tests and the sandbox as the real EVM counterpart. The node is run from the platform binary
itself (not the npm `bin.mjs` wrapper, a node process that would outlive a kill of its pid), and
stopped by its pid.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ANVIL_ENV = "PERPETUA_ANVIL"  # path of an anvil binary, overrides the lookup


class AnvilError(RuntimeError):
    """anvil could not be found, or did not start answering JSON-RPC."""


def _platform_package() -> str:
    """Name of the npm package holding this platform's anvil binary (`@foundry-rs/anvil-linux-amd64`)."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform, sys.platform)
    return f"anvil-{system}-{arch}"


def find_anvil(root: Path = PROJECT_ROOT) -> Path:
    """Path of the anvil binary: $PERPETUA_ANVIL, then node_modules under `root`, then $PATH."""
    explicit = os.environ.get(ANVIL_ENV)
    if explicit:
        return Path(explicit)
    binary = root / "node_modules" / "@foundry-rs" / _platform_package() / "bin" / "anvil"
    if binary.is_file():
        return binary
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise AnvilError(f"anvil not found: run `npm install` in {root} or set {ANVIL_ENV}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (another process may still take it before anvil does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AnvilNode:
    """A running anvil process; `url` is its HTTP JSON-RPC endpoint."""

    process: asyncio.subprocess.Process
    host: str
    port: int
    chain_id: int
    args: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        """HTTP JSON-RPC endpoint."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Websocket JSON-RPC endpoint (anvil serves both on the same port)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the anvil binary."""
        return self.process.pid

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Terminate the process by its pid (SIGTERM, then SIGKILL after `grace_seconds`)."""
        if self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), grace_seconds)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def _rpc_ready(url: str, within_seconds: float) -> int:
    """Poll `eth_chainId` at `url` until it answers; the chain id (`AnvilError` after `within_seconds`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=1.0)) as reply:
                    body = await reply.json()
                    return int(body["result"], 16)
            except (aiohttp.ClientError, TimeoutError):
                if loop.time() > deadline:
                    raise AnvilError(f"anvil at {url} did not answer within {within_seconds} s") from None
                await asyncio.sleep(0.05)


async def start_anvil(
    *extra_args: str,
    chain_id: int = 31337,
    host: str = "127.0.0.1",
    binary: Path | None = None,
    startup_seconds: float = 20.0,
    attempts: int = 3,
) -> AnvilNode:
    """Start anvil on a free port of `host` and wait until it answers JSON-RPC.

    `extra_args` go to anvil unchanged (e.g. `--code-size-limit`, `--block-time`). Its logs go to
    /dev/null (an unread pipe would fill and block the node). A port taken between the probe and
    anvil's bind is retried on another port, up to `attempts` times; each attempt waits at most
    `startup_seconds` for the node to answer.
    """
    executable = binary or find_anvil()
    last_error: BaseException | None = None
    for _ in range(attempts):
        port = free_port(host)
        args = ("--host", host, "--port", str(port), "--chain-id", str(chain_id), *extra_args)
        process = await asyncio.create_subprocess_exec(
            str(executable), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        node = AnvilNode(process, host, port, chain_id, args)
        ready = asyncio.ensure_future(_rpc_ready(node.url, startup_seconds))
        exited = asyncio.ensure_future(process.wait())
        await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and not ready.cancelled() and ready.exception() is None:
            exited.cancel()
            if ready.result() != chain_id:
                await node.stop()
                raise AnvilError(f"anvil answered chain id {ready.result()}, expected {chain_id}")
            return node
        ready.cancel()
        exited.cancel()
        last_error = ready.exception() if ready.done() and not ready.cancelled() else None
        last_error = last_error or AnvilError(f"anvil exited with {process.returncode} (port {port} taken?)")
        await node.stop()
    raise AnvilError(f"anvil did not start after {attempts} attempts") from last_error
