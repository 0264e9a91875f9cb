"""EVM connectors: a local anvil node, the real Uniswap contracts from their npm artifacts, the pool
readers `UniswapV2Pair` (`uniswap_v2`) and `UniswapV3Pool` (`uniswap_v3`) with local quotes, and (to
come) the chain session and ERC-20 connectors of issue 5."""
