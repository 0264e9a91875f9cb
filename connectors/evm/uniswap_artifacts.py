"""The real Uniswap contracts, loaded from their npm artifacts and deployed with an `AsyncWeb3`.

The artifacts are the ones published by Uniswap (`@uniswap/v2-core` 1.0.1, `@uniswap/v2-periphery`
1.1.0-beta.0, `@uniswap/v3-core` 1.0.1, `@uniswap/v3-periphery` 1.4.4, installed by `npm install` in
the project root): the bytecode that runs on mainnet, so the periphery's hard-coded pool init code
hash matches the pools the factory deploys (QuoterV2, SwapRouter and NonfungiblePositionManager
find their pools by CREATE2 address; UniswapV2Router02 its pairs likewise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress, HexStr
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from connectors.evm.anvil import PROJECT_ROOT

NODE_MODULES = PROJECT_ROOT / "node_modules"

# contract name -> (npm package, artifact path inside it)
ARTIFACTS: dict[str, tuple[str, str]] = {
    "UniswapV2Factory": ("@uniswap/v2-core", "build/UniswapV2Factory.json"),
    "UniswapV2Pair": ("@uniswap/v2-core", "build/UniswapV2Pair.json"),
    # v2-core's test ERC-20: constructor(uint256 totalSupply) mints it all to the deployer, 18 decimals
    "ERC20": ("@uniswap/v2-core", "build/ERC20.json"),
    # UniswapV2Library.pairFor hard-codes the pair init code hash: v2-core 1.0.1's pair has it
    "UniswapV2Router02": ("@uniswap/v2-periphery", "build/UniswapV2Router02.json"),
    "WETH9": ("@uniswap/v2-periphery", "build/WETH9.json"),
    "UniswapV3Factory": (
        "@uniswap/v3-core",
        "artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
    ),
    "UniswapV3Pool": ("@uniswap/v3-core", "artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json"),
    "NonfungiblePositionManager": (
        "@uniswap/v3-periphery",
        "artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
    ),
    "SwapRouter": ("@uniswap/v3-periphery", "artifacts/contracts/SwapRouter.sol/SwapRouter.json"),
    "QuoterV2": ("@uniswap/v3-periphery", "artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json"),
    "TickLens": ("@uniswap/v3-periphery", "artifacts/contracts/lens/TickLens.sol/TickLens.json"),
}


class ArtifactError(RuntimeError):
    """An artifact is missing or unusable, or a deployment failed."""


@dataclass(frozen=True)
class Artifact:
    """ABI and creation bytecode (0x-prefixed hex) of one contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: HexStr


@cache
def load_artifact(name: str, node_modules: Path = NODE_MODULES) -> Artifact:
    """The artifact of contract `name` (a key of `ARTIFACTS`) from `node_modules`.

    Reads both layouts: hardhat (`abi`, `bytecode`: v3) and waffle (`abi`, `bytecode` without 0x or
    `evm.bytecode.object`: v2). Raises `ArtifactError` for an unknown name, a missing file, or
    bytecode with unlinked library placeholders.
    """
    if name not in ARTIFACTS:
        raise ArtifactError(f"unknown artifact {name!r}; known: {sorted(ARTIFACTS)}")
    package, relative = ARTIFACTS[name]
    path = node_modules / package / relative
    if not path.is_file():
        raise ArtifactError(f"{path} missing: run `npm install` in {node_modules.parent}")
    data = json.loads(path.read_text())
    code = data.get("bytecode") or data.get("evm", {}).get("bytecode", {}).get("object", "")
    code = code if code.startswith("0x") else "0x" + code
    if "__" in code:  # solc's placeholder for a library address to link
        raise ArtifactError(f"{name}: bytecode needs linked libraries")
    return Artifact(name, data["abi"], HexStr(code))


async def deploy(
    w3: AsyncWeb3[Any], artifact: Artifact, *args: Any, sender: ChecksumAddress | None = None
) -> AsyncContract:
    """Deploy `artifact` with constructor `args` from `sender` (default: the node's first account).

    Sends through `eth_sendTransaction`, so `sender` must be unlocked on the node (anvil's dev
    accounts are). Waits for the receipt; raises `ArtifactError` if the creation reverted.
    """
    sender = sender or (await w3.eth.accounts)[0]
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx_hash = await factory.constructor(*args).transact({"from": sender})
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash)
    address = receipt["contractAddress"]
    if receipt["status"] != 1 or address is None:
        raise ArtifactError(f"deploying {artifact.name} reverted (tx {tx_hash.to_0x_hex()})")
    return w3.eth.contract(address=address, abi=artifact.abi)


def contract_at(w3: AsyncWeb3[Any], name: str, address: ChecksumAddress) -> AsyncContract:
    """The already-deployed contract `name` (a key of `ARTIFACTS`) at `address`."""
    return w3.eth.contract(address=address, abi=load_artifact(name).abi)
