"""Token issuers (mint/redeem desks): live connectors behind the venue port."""
