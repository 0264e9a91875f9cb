// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title StockToken
/// @notice A tokenized stock: an ERC-20 (18 decimals) that only the issuer mints and burns, with an
/// ERC-8056-style UI multiplier (1e18-scaled) for corporate actions (splits, dividends in shares):
/// the issuer schedules `newUIMultiplier` from `effectiveAt` (unix seconds), and `uiMultiplier()`
/// returns it once `block.timestamp >= effectiveAt`. Shares held = balance * uiMultiplier / 1e18.
contract StockToken {
    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    address public immutable issuer;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    uint256 private currentUIMultiplier = 1e18;
    uint256 public newUIMultiplier = 1e18;
    uint256 public effectiveAt;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event UIMultiplierUpdated(uint256 oldMultiplier, uint256 newMultiplier, uint256 effectiveAt);

    error NotIssuer();
    error InsufficientBalance();
    error InsufficientAllowance();
    error ZeroMultiplier();

    modifier onlyIssuer() {
        if (msg.sender != issuer) revert NotIssuer();
        _;
    }

    constructor(string memory name_, string memory symbol_) {
        name = name_;
        symbol = symbol_;
        issuer = msg.sender;
    }

    /// @notice The multiplier in force now (1e18 = 1x).
    function uiMultiplier() public view returns (uint256) {
        return block.timestamp >= effectiveAt ? newUIMultiplier : currentUIMultiplier;
    }

    /// @notice Schedule `multiplier` (1e18-scaled) from `effectiveAt_` (unix seconds).
    function setUIMultiplier(uint256 multiplier, uint256 effectiveAt_) external onlyIssuer {
        if (multiplier == 0) revert ZeroMultiplier();
        currentUIMultiplier = uiMultiplier();
        newUIMultiplier = multiplier;
        effectiveAt = effectiveAt_;
        emit UIMultiplierUpdated(currentUIMultiplier, multiplier, effectiveAt_);
    }

    function mint(address to, uint256 amount) external onlyIssuer {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function burn(address from, uint256 amount) external onlyIssuer {
        if (balanceOf[from] < amount) revert InsufficientBalance();
        balanceOf[from] -= amount;
        totalSupply -= amount;
        emit Transfer(from, address(0), amount);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _transfer(msg.sender, to, amount);
        return true;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < amount) revert InsufficientAllowance();
            allowance[from][msg.sender] = allowed - amount;
        }
        _transfer(from, to, amount);
        return true;
    }

    function _transfer(address from, address to, uint256 amount) private {
        if (balanceOf[from] < amount) revert InsufficientBalance();
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
