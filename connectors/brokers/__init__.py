"""Stock brokers: live connectors behind the venue port."""
