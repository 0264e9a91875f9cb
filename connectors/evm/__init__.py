"""EVM connectors: a local anvil node, the real Uniswap contracts from their npm artifacts, and (to come)
the chain session, ERC-20 and pool connectors of issue 5."""
